"""The eval plot: the threshold curve and the confusion of the worst classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillswitch.evals.intents import IntentReport
from skillswitch.exceptions import MissingDependencyError

__all__ = ["plot_report"]

_WORST = 12


def plot_report(report: IntentReport, truth: Sequence[str], path: Path, *, oos_label: str) -> Path:
    """Write a PNG: left, in-scope accuracy and out-of-scope recall against the threshold
    (chosen threshold marked); right, the confusion matrix of the lowest-F1 classes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("eval --plot", "plot", "matplotlib") from None

    figure, (curve_axis, confusion_axis) = plt.subplots(1, 2, figsize=(15, 6.5))
    curve = report.curve
    curve_axis.plot(curve.thresholds, curve.in_scope_accuracy, label="in-scope accuracy")
    if curve.oos_recall is not None:
        curve_axis.plot(curve.thresholds, curve.oos_recall, label="out-of-scope recall")
    curve_axis.axvline(report.threshold, color="grey", linestyle="--", label="chosen threshold")
    curve_axis.set_xlabel("threshold on confidence")
    curve_axis.set_ylim(0, 1.02)
    curve_axis.set_title("threshold curve (test)")
    curve_axis.legend(loc="lower left")
    curve_axis.grid(alpha=0.3)

    worst = sorted(
        (c for c in report.metrics.per_class if c.support > 0), key=lambda c: (c.f1, c.label)
    )[:_WORST]
    labels = [c.label for c in worst]
    if oos_label in set(truth) and oos_label not in labels:
        labels.append(oos_label)
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    matrix = np.zeros((len(labels), len(labels) + 1))
    for true, predicted in zip(truth, report.predictions, strict=True):
        if true in index:
            matrix[index[true], index.get(predicted, other)] += 1
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    confusion_axis.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    confusion_axis.set_yticks(range(len(labels)), labels, fontsize=8)
    confusion_axis.set_xticks(
        range(len(labels) + 1), [*labels, "(other)"], rotation=60, ha="right", fontsize=8
    )
    confusion_axis.set_title(f"confusion of the {len(worst)} lowest-F1 classes (row share)")
    confusion_axis.set_xlabel("predicted")
    confusion_axis.set_ylabel("true")
    metrics = report.metrics
    summary = f"in-scope accuracy {metrics.in_scope_accuracy:.3f}"
    if metrics.oos_recall is not None:
        summary += (
            f" · oos recall {metrics.oos_recall:.3f} · oos precision {metrics.oos_precision:.3f}"
        )
    figure.suptitle(
        f"{summary} · macro-F1 {metrics.macro_f1:.3f} · threshold {report.threshold:.3f}"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
