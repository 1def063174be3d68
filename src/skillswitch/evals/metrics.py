"""Metrics of intent routing with out-of-scope rejection (definitions of Larson et al., 2019)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ClassScore",
    "IntentMetrics",
    "ThresholdCurve",
    "intent_metrics",
    "percentiles",
    "threshold_curve",
]


@dataclass(frozen=True, slots=True)
class ClassScore:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class IntentMetrics:
    """``in_scope_accuracy``: share of in-scope items given their exact label (a rejection counts
    as wrong). ``oos_recall``: share of out-of-scope items rejected. ``oos_precision``: share of
    rejections that were out of scope. ``macro_f1``: over every label, out-of-scope included."""

    in_scope_accuracy: float
    oos_recall: float | None
    oos_precision: float | None
    macro_f1: float
    accuracy: float
    in_scope_items: int
    oos_items: int
    per_class: tuple[ClassScore, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_class"] = [asdict(c) for c in self.per_class]
        return data


def intent_metrics(
    truth: Sequence[str], predicted: Sequence[str], *, oos_label: str
) -> IntentMetrics:
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    true = np.asarray(truth, dtype=object)
    pred = np.asarray(predicted, dtype=object)
    is_oos = true == oos_label
    in_scope = ~is_oos
    said_oos = pred == oos_label
    n_oos = int(is_oos.sum())
    labels = sorted(set(truth) | set(predicted))
    per_class = []
    true_counts = Counter(truth)
    pred_counts = Counter(predicted)
    hits = Counter(t for t, p in zip(truth, predicted, strict=True) if t == p)
    for label in labels:
        tp = hits[label]
        precision = tp / pred_counts[label] if pred_counts[label] else 0.0
        recall = tp / true_counts[label] if true_counts[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassScore(label, precision, recall, f1, true_counts[label]))
    scored = [c for c in per_class if c.support > 0]
    return IntentMetrics(
        in_scope_accuracy=float(np.mean(true[in_scope] == pred[in_scope]))
        if in_scope.any()
        else 0.0,
        oos_recall=float(np.mean(said_oos[is_oos])) if n_oos else None,
        oos_precision=(
            float(np.mean(is_oos[said_oos]))
            if n_oos and said_oos.any()
            else (0.0 if n_oos else None)
        ),
        macro_f1=float(np.mean([c.f1 for c in scored])) if scored else 0.0,
        accuracy=float(np.mean(true == pred)),
        in_scope_items=int(in_scope.sum()),
        oos_items=n_oos,
        per_class=tuple(per_class),
    )


@dataclass(frozen=True, slots=True)
class ThresholdCurve:
    thresholds: npt.NDArray[np.float64]
    in_scope_accuracy: npt.NDArray[np.float64]
    oos_recall: npt.NDArray[np.float64] | None


def threshold_curve(
    confidence: npt.NDArray[np.floating],
    correct: npt.NDArray[np.bool_],
    is_oos: npt.NDArray[np.bool_],
    *,
    points: int = 201,
) -> ThresholdCurve:
    """In-scope accuracy and out-of-scope recall as the threshold sweeps the confidence range."""
    values = np.asarray(confidence, dtype=np.float64)
    finite = values[values > -1.0]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    thresholds = np.linspace(low, high, points)
    inside = ~is_oos
    good = np.sort(values[inside & correct])
    accuracy = (good.size - np.searchsorted(good, thresholds, side="left")) / max(
        int(inside.sum()), 1
    )
    recall = None
    if is_oos.any():
        outside = np.sort(values[is_oos])
        recall = np.searchsorted(outside, thresholds, side="left") / outside.size
    return ThresholdCurve(thresholds, accuracy, recall)


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean of latencies in milliseconds."""
    array = np.asarray(values_ms, dtype=np.float64)
    if array.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "n": 0}
    return {
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "p99": float(np.percentile(array, 99)),
        "mean": float(array.mean()),
        "n": int(array.size),
    }
