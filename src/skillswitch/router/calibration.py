"""Choosing the out-of-scope threshold on calibration data (never on test data)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from skillswitch.config.models import ThresholdObjective
from skillswitch.exceptions import DatasetError
from skillswitch.router.scoring import Scores, confidence

__all__ = ["KEEP_WITHOUT_NEGATIVES", "Calibration", "calibrate_scores", "choose_threshold"]

KEEP_WITHOUT_NEGATIVES = 0.95
"""With no out-of-scope examples, the threshold keeps this share of correct in-scope items."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The chosen threshold and what it achieved on the calibration items."""

    threshold: float
    objective: str
    in_scope_accuracy: float
    out_of_scope_recall: float | None
    in_scope_items: int
    out_of_scope_items: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def choose_threshold(
    confidence: npt.NDArray[np.floating],
    correct: npt.NDArray[np.bool_],
    out_of_scope: npt.NDArray[np.bool_],
    objective: ThresholdObjective = "balanced",
    *,
    keep_without_negatives: float = KEEP_WITHOUT_NEGATIVES,
) -> Calibration:
    """Pick the threshold on confidence that best serves ``objective``.

    ``correct[i]``: the classifier's best skill for in-scope item ``i`` is its label.
    ``out_of_scope[i]``: item ``i`` should be rejected. An in-scope item counts as right when it
    is correct and its confidence reaches the threshold; an out-of-scope item when it does not.
    Ties between thresholds resolve to the middle of the best plateau (least brittle).
    With no out-of-scope items there is nothing to balance: the threshold keeps
    ``keep_without_negatives`` of the correct in-scope items (1.0: rejects nothing seen).
    """
    levels = np.asarray(confidence, dtype=np.float64)
    inside = ~out_of_scope
    n_in = int(inside.sum())
    n_out = int(out_of_scope.sum())
    if n_in == 0:
        raise ValueError("calibration needs at least one in-scope item")
    if n_out == 0:
        kept = np.sort(levels[inside & correct])
        if kept.size == 0 or keep_without_negatives >= 1.0:
            threshold = float(levels.min()) - 1.0
        else:
            threshold = float(np.quantile(kept, 1.0 - keep_without_negatives, method="lower"))
        accuracy = float(np.mean(correct[inside] & (levels[inside] >= threshold)))
        rule = f"keep-{round(100 * min(keep_without_negatives, 1.0))}%"
        return Calibration(threshold, rule, accuracy, None, n_in, 0)

    candidates = np.unique(levels)
    # Thresholds between consecutive distinct values, plus one below all and one above all.
    cuts = np.concatenate(
        ([candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6])
    )
    good_in = np.sort(levels[inside & correct])
    all_out = np.sort(levels[out_of_scope])
    # accepted in-scope-correct items: confidence >= cut; rejected oos: confidence < cut
    in_accuracy = (good_in.size - np.searchsorted(good_in, cuts, side="left")) / n_in
    recall = np.searchsorted(all_out, cuts, side="left") / n_out
    if objective == "balanced":
        value = (in_accuracy + recall) / 2
    elif objective == "min":
        value = np.minimum(in_accuracy, recall)
    else:
        value = (in_accuracy * n_in + recall * n_out) / (n_in + n_out)
    best = np.flatnonzero(value >= value.max() - 1e-12)
    # Choose the middle of the longest run of consecutive optimal cuts.
    runs = np.split(best, np.flatnonzero(np.diff(best) != 1) + 1)
    run = max(runs, key=len)
    index = int(run[len(run) // 2])
    return Calibration(
        threshold=float(cuts[index]),
        objective=objective,
        in_scope_accuracy=float(in_accuracy[index]),
        out_of_scope_recall=float(recall[index]),
        in_scope_items=n_in,
        out_of_scope_items=n_out,
    )


NO_VALIDATION = (
    "no validation items to choose the out-of-scope threshold on (10% of the training data is "
    "held out when no validation data is given, and that was none): give validation data "
    "(--val FILE) or more training items"
)


def calibrate_scores(
    scores: Scores,
    skills: Sequence[str],
    labels: Sequence[str],
    *,
    out_of_scope_label: str,
    objective: ThresholdObjective,
    keep_without_negatives: float = KEEP_WITHOUT_NEGATIVES,
) -> Calibration:
    """:func:`choose_threshold` for classifier ``scores`` of items labelled ``labels``."""
    if not labels:
        raise DatasetError(NO_VALIDATION)
    position = {skill: i for i, skill in enumerate(skills)}
    rejected = np.array([label == out_of_scope_label for label in labels])
    expected = np.array([position.get(label, -1) for label in labels])
    correct = (scores.skills.argmax(axis=1) == expected) & ~rejected
    return choose_threshold(
        confidence(scores),
        correct,
        rejected,
        objective,
        keep_without_negatives=keep_without_negatives,
    )
