"""From classifier scores to decisions: one rule shared by routing, calibration and eval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["REJECTED", "Scores", "choose_skills", "confidence"]

FloatArray = npt.NDArray[np.float32]

REJECTED = -1.0
"""Confidence given when a reject (out-of-scope) example or class beats every skill."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Classifier output for ``n`` requests.

    ``skills``: ``(n, n_skills)`` scores, higher is better. ``reject``: ``(n,)`` score of the
    out-of-scope examples/class on the same scale, or None when the classifier has none.
    ``level``: ``(n,)`` the classifier's own in-scope confidence (higher = more in scope), for
    classifiers whose out-of-scope score is not a skill score (e.g. energy + nearest neighbours);
    when given, it is what the threshold applies to.
    """

    skills: FloatArray
    reject: FloatArray | None
    level: FloatArray | None = None


def confidence(scores: Scores) -> FloatArray:
    """The number compared with the threshold: the best skill's score, or ``REJECTED`` when the
    out-of-scope reject score is higher than every skill's; or the classifier's own level."""
    if scores.level is not None:
        return scores.level
    best: FloatArray = scores.skills.max(axis=1).astype(np.float32)
    if scores.reject is None:
        return best
    rejected: FloatArray = np.where(scores.reject > best, np.float32(REJECTED), best).astype(
        np.float32
    )
    return rejected


def choose_skills(row: FloatArray, *, top_k: int, margin: float) -> list[int]:
    """Indices of the skills one request gets: the best, and up to ``top_k - 1`` more whose
    scores are within ``margin`` of it (best first)."""
    count = min(top_k, row.shape[0])
    order = np.argsort(-row, kind="stable")[:count]
    best = row[order[0]]
    return [int(i) for i in order if best - row[i] <= margin]
