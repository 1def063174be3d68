"""Per-request tie-break competence from the validation questions nearest the request.

When a cascade's first stage disagrees, the recruiter widens it with the experts most often
right on *similar* questions where the first stage disagreed too: the validation questions of
that kind, embedded with the router's encoder, are kept (``neighbours.npz`` beside
``profiles.json``); a request's ``k`` nearest (cosine) weigh each expert's correctness by
similarity, shrunk toward the skill-level tie-break competence by ``prior`` pseudo-questions.
On MMLU-Pro (benchmarks/expert_recruitment.py) this picks better tie-breakers than the
category alone; the category-level competence stays the vote's weight.

>>> neighbours = TiebreakNeighbours.build(ids, vectors, correct, experts, encoder)  # doctest: +SKIP
>>> neighbours.competence(vector, base)  # doctest: +SKIP
array([0.41, 0.52, ...])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.exceptions import ArtifactError

__all__ = ["NEIGHBOURS_FILE", "TiebreakNeighbours"]

NEIGHBOURS_FILE = "neighbours.npz"


@dataclass(frozen=True)
class TiebreakNeighbours:
    """Embedded validation questions where the first stage disagreed, and who was right.

    ``vectors``: (questions, d) unit-length embeddings; ``correct``: (questions, experts) 0/1
    (no output counts as wrong); ``encoder``: the identity of the encoder that embedded them
    (a request must be embedded by the same one).
    """

    question_ids: tuple[str, ...]
    vectors: np.ndarray
    correct: np.ndarray
    experts: tuple[str, ...]
    encoder: str
    encoder_name: str = ""
    k: int = 50
    prior: float = 20.0
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.k < 1 or self.prior < 0:
            raise ValueError(f"k must be >= 1 and prior >= 0, got k={self.k}, prior={self.prior}")
        if self.vectors.shape[0] != len(self.question_ids) or self.correct.shape != (
            len(self.question_ids),
            len(self.experts),
        ):
            raise ValueError(
                f"{len(self.question_ids)} questions, vectors {self.vectors.shape}, "
                f"correct {self.correct.shape} for {len(self.experts)} experts"
            )
        object.__setattr__(self, "_index", {q: i for i, q in enumerate(self.question_ids)})

    @classmethod
    def build(
        cls,
        question_ids: Sequence[str],
        vectors: np.ndarray,
        correct: np.ndarray,
        experts: Sequence[str],
        encoder: str,
        *,
        encoder_name: str = "",
        k: int = 50,
        prior: float = 20.0,
    ) -> TiebreakNeighbours:
        """From validation rows (``correct`` may hold NaN for no output: counted wrong)."""
        return cls(
            tuple(str(q) for q in question_ids),
            np.asarray(vectors, dtype=np.float32),
            np.nan_to_num(np.asarray(correct, dtype=np.float32), nan=0.0),
            tuple(experts),
            encoder,
            encoder_name,
            k,
            prior,
        )

    def __len__(self) -> int:
        return len(self.question_ids)

    def competence(
        self, vector: np.ndarray, base: np.ndarray, *, exclude: str | None = None
    ) -> np.ndarray:
        """(experts,) accuracy on the ``k`` nearest questions, similarity-weighted, shrunk
        toward ``base`` (the skill-level tie-break competence). ``exclude``: a question id to
        leave out (a validation question scored against its own profile)."""
        if not len(self):
            return np.asarray(base, dtype=np.float64)
        similarity = self.vectors @ np.asarray(vector, dtype=np.float32)
        skip = self._index.get(exclude) if exclude is not None else None
        if skip is not None:
            similarity[skip] = -np.inf
        k = min(self.k, len(self) - (skip is not None))
        if k <= 0:
            return np.asarray(base, dtype=np.float64)
        nearest = np.argpartition(-similarity, k - 1)[:k]
        weights = np.maximum(similarity[nearest], 0.0).astype(np.float64)
        total = weights.sum() + self.prior
        if total <= 0:  # no similar question and no shrinkage: the skill level stands
            return np.asarray(base, dtype=np.float64)
        hits = weights @ self.correct[nearest].astype(np.float64)
        return np.asarray((hits + self.prior * base) / total)

    def describe(self) -> dict[str, Any]:
        """The profiles.json entry that points at the file."""
        return {
            "file": NEIGHBOURS_FILE,
            "questions": len(self),
            "encoder": self.encoder,
            "encoder_name": self.encoder_name,
            "k": self.k,
            "prior": self.prior,
        }

    def save(self, path: Path) -> None:
        # float16 vectors: half the size, and cosine similarities move by < 1e-3.
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                question_ids=np.array(self.question_ids, dtype=str),
                vectors=self.vectors.astype(np.float16),
                correct=self.correct.astype(np.uint8),
            )

    @classmethod
    def load(
        cls, path: Path, experts: Sequence[str], described: Mapping[str, Any]
    ) -> TiebreakNeighbours:
        try:
            with np.load(path, allow_pickle=False) as stored:
                ids = tuple(str(q) for q in stored["question_ids"])
                vectors = stored["vectors"].astype(np.float32)
                correct = stored["correct"].astype(np.float32)
        except FileNotFoundError:
            raise ArtifactError(
                f"{path} is missing (profiles.json names it); copy it with profiles.json or "
                "rebuild both with `skillswitch fit profiles --neighbours K`"
            ) from None
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a neighbours file ({exc}); rebuild it") from None
        if correct.shape[1:] != (len(experts),):
            raise ArtifactError(
                f"{path}: {correct.shape[1:]} expert columns for {len(experts)} profiled experts; "
                "rebuild it with `skillswitch fit profiles --neighbours K`"
            )
        return cls(
            ids,
            vectors,
            correct,
            tuple(experts),
            str(described["encoder"]),
            str(described.get("encoder_name", "")),
            int(described["k"]),
            float(described["prior"]),
        )
