from __future__ import annotations

import numpy as np
import pytest

from skillswitch.evals.metrics import intent_metrics, percentiles, threshold_curve


def test_intent_metrics_follow_larson_definitions() -> None:
    truth = ["a", "a", "b", "b", "oos", "oos", "oos", "oos"]
    predicted = ["a", "oos", "b", "a", "oos", "oos", "a", "oos"]
    metrics = intent_metrics(truth, predicted, oos_label="oos")
    assert metrics.in_scope_accuracy == 0.5  # a->oos and b->a are wrong
    assert metrics.oos_recall == 0.75
    assert metrics.oos_precision == 0.75  # 3 of 4 rejections were out of scope
    assert metrics.in_scope_items == 4
    assert metrics.oos_items == 4
    f1 = {c.label: c.f1 for c in metrics.per_class}
    assert f1["b"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert metrics.macro_f1 == pytest.approx(np.mean(list(f1.values())))


def test_metrics_without_out_of_scope_items() -> None:
    metrics = intent_metrics(["a", "b"], ["a", "a"], oos_label="oos")
    assert metrics.oos_recall is None
    assert metrics.oos_precision is None
    assert metrics.in_scope_accuracy == 0.5


def test_threshold_curve_is_monotone() -> None:
    rng = np.random.default_rng(0)
    levels = rng.random(200)
    curve = threshold_curve(levels, rng.random(200) > 0.2, rng.random(200) > 0.7)
    assert np.all(np.diff(curve.in_scope_accuracy) <= 1e-12)
    assert curve.oos_recall is not None
    assert np.all(np.diff(curve.oos_recall) >= -1e-12)


def test_percentiles() -> None:
    stats = percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["p50"] == 3.0
    assert stats["n"] == 5
    assert percentiles([])["n"] == 0
