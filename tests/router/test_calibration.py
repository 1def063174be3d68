from __future__ import annotations

import numpy as np
import pytest

from skillswitch.router.calibration import KEEP_WITHOUT_NEGATIVES, choose_threshold


def test_separable_scores_get_a_threshold_between_the_classes() -> None:
    levels = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    correct = np.array([True, True, True, False, False])
    oos = np.array([False, False, False, True, True])
    calibration = choose_threshold(levels, correct, oos, "balanced")
    assert 0.2 < calibration.threshold <= 0.7
    assert calibration.in_scope_accuracy == 1.0
    assert calibration.out_of_scope_recall == 1.0


@pytest.mark.parametrize(
    ("objective", "expected_accuracy", "expected_recall"),
    [("balanced", 1.0, 0.5), ("min", 0.75, 0.5), ("accuracy", 1.0, 0.5)],
)
def test_objectives_trade_accuracy_for_recall(
    objective: str, expected_accuracy: float, expected_recall: float
) -> None:
    # in-scope correct at 0.9 0.8 0.6 0.4; out of scope at 0.5 and 0.3
    levels = np.array([0.9, 0.8, 0.6, 0.4, 0.5, 0.3])
    correct = np.array([True, True, True, True, False, False])
    oos = np.array([False, False, False, False, True, True])
    calibration = choose_threshold(levels, correct, oos, objective)  # type: ignore[arg-type]
    assert calibration.in_scope_accuracy >= expected_accuracy - 0.26
    assert calibration.out_of_scope_recall is not None
    assert calibration.out_of_scope_recall >= expected_recall
    # the achieved figures are what the threshold really gives
    accepted = levels >= calibration.threshold
    assert calibration.in_scope_accuracy == pytest.approx(np.mean(accepted[:4]))
    assert calibration.out_of_scope_recall == pytest.approx(np.mean(~accepted[4:]))


def test_without_negatives_the_threshold_keeps_most_correct_items() -> None:
    levels = np.linspace(0.1, 1.0, 100)
    correct = np.ones(100, dtype=bool)
    calibration = choose_threshold(levels, correct, np.zeros(100, dtype=bool))
    kept = np.mean(levels >= calibration.threshold)
    assert kept == pytest.approx(KEEP_WITHOUT_NEGATIVES, abs=0.011)
    assert calibration.out_of_scope_recall is None


def test_rejections_by_the_reject_class_count_as_recall_at_any_threshold() -> None:
    levels = np.array([0.6, 0.5, -1.0, -1.0])
    calibration = choose_threshold(
        levels, np.array([True, True, False, False]), np.array([False, False, True, True])
    )
    assert calibration.threshold <= 0.5
    assert calibration.out_of_scope_recall == 1.0
