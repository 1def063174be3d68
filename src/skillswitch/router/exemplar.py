"""Zero-training skill classifier: a skill's score is its nearest example utterances' cosine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from skillswitch.router.encoders.base import Embeddings
from skillswitch.router.scoring import Scores

__all__ = ["ExemplarClassifier"]

IntArray = npt.NDArray[np.intp]

# Queries are scored in chunks so an eval over thousands of requests stays within memory.
_QUERY_CHUNK = 256
_EMPTY = -1.0  # score of a skill with no usable example (cosine's minimum)


class ExemplarClassifier:
    """Scores skills by the mean cosine of each skill's ``neighbours`` most similar examples.

    Out-of-scope examples, when given, form a reject score on the same scale.
    """

    def __init__(
        self,
        skills: Sequence[str],
        exemplars: Embeddings,
        labels: Sequence[int],
        *,
        reject: Embeddings | None = None,
        neighbours: int = 1,
    ) -> None:
        label_array = np.asarray(labels, dtype=np.intp)
        if exemplars.shape[0] != label_array.shape[0]:
            raise ValueError(f"{exemplars.shape[0]} exemplars but {label_array.shape[0]} labels")
        if label_array.size and (label_array.min() < 0 or label_array.max() >= len(skills)):
            raise ValueError("exemplar labels must index the skills")
        self.skills = tuple(skills)
        self.neighbours = neighbours
        self._exemplars = np.ascontiguousarray(exemplars, dtype=np.float32)
        self._labels = label_array
        self._groups = _group_index(label_array, len(self.skills))
        self._reject = (
            np.ascontiguousarray(reject, dtype=np.float32)
            if reject is not None and reject.shape[0]
            else None
        )

    @property
    def name(self) -> str:
        return f"exemplar(k={self.neighbours}, examples={self._exemplars.shape[0]})"

    def scores(self, queries: Embeddings) -> Scores:
        skill_parts, reject_parts = [], []
        for start in range(0, queries.shape[0], _QUERY_CHUNK):
            chunk = queries[start : start + _QUERY_CHUNK]
            skill_parts.append(self._skill_scores(chunk @ self._exemplars.T))
            if self._reject is not None:
                reject_parts.append(self._top_mean(chunk @ self._reject.T))
        skills = (
            np.concatenate(skill_parts)
            if skill_parts
            else np.zeros((0, len(self.skills)), np.float32)
        )
        reject = np.concatenate(reject_parts) if reject_parts else None
        return Scores(skills, reject)

    def leave_one_out(self) -> tuple[Scores, IntArray, Scores | None]:
        """Scores of every example with itself held out: (in-scope scores, their labels,
        out-of-scope examples' scores). This is what ``threshold: auto`` calibrates on."""
        inside = self._held_out(self._exemplars, self_offset=0)
        outside = None
        if self._reject is not None:
            outside = self._held_out(self._reject, self_offset=None)
        return inside, self._labels, outside

    def _held_out(self, items: Embeddings, self_offset: int | None) -> Scores:
        """Score ``items`` (rows of the exemplar matrix when ``self_offset`` is 0, else rows of
        the reject matrix), each with its own row masked out."""
        skill_parts, reject_parts = [], []
        for start in range(0, items.shape[0], _QUERY_CHUNK):
            chunk = items[start : start + _QUERY_CHUNK]
            rows = np.arange(chunk.shape[0])
            own = chunk @ self._exemplars.T
            if self_offset is not None:
                own[rows, start + rows] = -np.inf
            skill_parts.append(self._skill_scores(own))
            if self._reject is not None:
                other = chunk @ self._reject.T
                if self_offset is None:
                    other[rows, start + rows] = -np.inf
                reject_parts.append(self._top_mean(other))
        return Scores(
            np.concatenate(skill_parts),
            np.concatenate(reject_parts) if reject_parts else None,
        )

    def _skill_scores(self, similarities: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        n = similarities.shape[0]
        padded = np.concatenate([similarities, np.full((n, 1), -np.inf, np.float32)], axis=1)
        grouped = padded[:, self._groups]  # (n, skills, most examples of one skill)
        return self._top_mean(grouped)

    def _top_mean(self, similarities: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Mean of the ``neighbours`` largest finite values along the last axis."""
        width = similarities.shape[-1]
        k = min(self.neighbours, width)
        if k == 0:
            return np.full(similarities.shape[:-1], _EMPTY, np.float32)
        if k == 1:
            top = similarities.max(axis=-1, keepdims=True)
        else:
            top = -np.partition(-similarities, k - 1, axis=-1)[..., :k]
        finite = np.isfinite(top)
        count = finite.sum(axis=-1)
        total = np.where(finite, top, 0.0).sum(axis=-1)
        mean = np.divide(total, count, out=np.full(count.shape, _EMPTY), where=count > 0)
        result: npt.NDArray[np.float32] = mean.astype(np.float32)
        return result


def _group_index(labels: IntArray, n_skills: int) -> IntArray:
    """``(n_skills, widest)`` matrix of exemplar indices per skill, padded with ``len(labels)``
    (the extra -inf column appended to similarity rows)."""
    counts = np.bincount(labels, minlength=n_skills) if labels.size else np.zeros(n_skills, int)
    width = max(int(counts.max()) if counts.size else 0, 1)
    index = np.full((n_skills, width), labels.shape[0], dtype=np.intp)
    fill = np.zeros(n_skills, dtype=np.intp)
    for position, label in enumerate(labels):
        index[label, fill[label]] = position
        fill[label] += 1
    return index
