"""``skillswitch eval intents``: fit or load a router on labelled data and score it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skillswitch.config.models import ThresholdObjective
from skillswitch.evals.datasets import LabelledData
from skillswitch.evals.metrics import (
    IntentMetrics,
    ThresholdCurve,
    intent_metrics,
    percentiles,
    threshold_curve,
)
from skillswitch.router.calibration import Calibration
from skillswitch.router.encoders import EmbeddingCache, Encoder
from skillswitch.router.router import Router
from skillswitch.router.scoring import confidence

__all__ = ["IntentReport", "evaluate_router", "exemplar_router_from_data", "grouped_examples"]

Progress = Callable[[int, int], None]
_SCORE_CHUNK = 512


@dataclass(frozen=True)
class IntentReport:
    metrics: IntentMetrics
    threshold: float
    calibration: Calibration | None
    curve: ThresholdCurve
    latency_ms: dict[str, float]
    encoder_latency_ms: dict[str, float]
    confusions: list[tuple[str, str, int]]
    predictions: list[str] = field(repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics.to_dict(),
            "threshold": self.threshold,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "latency_ms": self.latency_ms,
            "encoder_latency_ms": self.encoder_latency_ms,
            "top_confusions": [
                {"true": t, "predicted": p, "count": n} for t, p, n in self.confusions
            ],
            "curve": {
                "thresholds": self.curve.thresholds.round(6).tolist(),
                "in_scope_accuracy": self.curve.in_scope_accuracy.round(6).tolist(),
                "oos_recall": None
                if self.curve.oos_recall is None
                else self.curve.oos_recall.round(6).tolist(),
            },
            "seconds": round(self.seconds, 3),
        }


def grouped_examples(data: LabelledData, oos_label: str) -> tuple[dict[str, list[str]], list[str]]:
    """In-scope texts grouped by label (in first-seen order) and the out-of-scope texts."""
    examples: dict[str, list[str]] = {}
    rejects: list[str] = []
    for text, label in zip(data.texts, data.labels, strict=True):
        if label == oos_label:
            rejects.append(text)
        else:
            examples.setdefault(label, []).append(text)
    return examples, rejects


def exemplar_router_from_data(
    encoder: Encoder,
    train: LabelledData,
    val: LabelledData | None,
    *,
    oos_label: str,
    neighbours: int,
    objective: ThresholdObjective,
    cache: EmbeddingCache | None,
) -> Router:
    """A zero-training router whose examples are the training items; the threshold is chosen on
    ``val`` when given, else leave-one-out on the training items."""
    examples, rejects = grouped_examples(train, oos_label)
    router = Router.from_examples(
        encoder,
        examples,
        rejects,
        neighbours=neighbours,
        objective=objective,
        cache=cache,
        out_of_scope_label=oos_label,
        threshold="auto" if val is None else 0.0,
    )
    if val is not None:
        router.calibrate(val.texts, val.labels, objective=objective, cache=cache)
    return router


def evaluate_router(
    router: Router,
    test: LabelledData,
    *,
    oos_label: str,
    latency_requests: int = 500,
    progress: Progress | None = None,
) -> IntentReport:
    """Score every test item (batched), then time ``latency_requests`` single-request decisions."""
    started = time.perf_counter()
    levels_parts, best_parts = [], []
    total = len(test.texts)
    for start in range(0, total, _SCORE_CHUNK):
        scores = router.score(list(test.texts[start : start + _SCORE_CHUNK]))
        levels_parts.append(confidence(scores))
        best_parts.append(scores.skills.argmax(axis=1))
        if progress is not None:
            progress(min(start + _SCORE_CHUNK, total), total)
    levels = np.concatenate(levels_parts)
    best = np.concatenate(best_parts)
    skills = router.skills
    predicted = [
        oos_label if level < router.threshold else skills[index]
        for level, index in zip(levels, best, strict=True)
    ]
    truth = list(test.labels)
    metrics = intent_metrics(truth, predicted, oos_label=oos_label)
    is_oos = np.array([label == oos_label for label in truth])
    correct = np.array([skills[i] == t for i, t in zip(best, truth, strict=True)])
    curve = threshold_curve(levels, correct, is_oos)
    confusions = Counter(
        (t, p) for t, p in zip(truth, predicted, strict=True) if t != p
    ).most_common(15)
    latency, encoder_latency = _time_single_requests(router, test, latency_requests)
    return IntentReport(
        metrics=metrics,
        threshold=router.threshold,
        calibration=router.calibration,
        curve=curve,
        latency_ms=latency,
        encoder_latency_ms=encoder_latency,
        confusions=[(t, p, n) for (t, p), n in confusions],
        predictions=predicted,
        seconds=time.perf_counter() - started,
    )


def _time_single_requests(
    router: Router, test: LabelledData, count: int
) -> tuple[dict[str, float], dict[str, float]]:
    if count <= 0:
        return percentiles([]), percentiles([])
    step = max(len(test.texts) // count, 1)
    sample = list(test.texts[::step])[:count]
    for text in sample[:10]:  # warm-up: first calls allocate
        router.route(text)
    decisions, encoders = [], []
    for text in sample:
        begin = time.perf_counter()
        router.route(text)
        decisions.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        router.encoder.encode([text])
        encoders.append((time.perf_counter() - begin) * 1000)
    return percentiles(decisions), percentiles(encoders)
