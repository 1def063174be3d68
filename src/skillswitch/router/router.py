"""The router: request text -> :class:`RoutingDecision`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from skillswitch.config import environment
from skillswitch.config.models import Config, ExemplarClassifierConfig, ThresholdObjective
from skillswitch.router.calibration import Calibration, calibrate_scores, choose_threshold
from skillswitch.router.decision import RoutingDecision, RoutingTiming, SkillScore
from skillswitch.router.encoders import EmbeddingCache, Encoder, build_encoder
from skillswitch.router.encoders.base import Embeddings
from skillswitch.router.exemplar import ExemplarClassifier
from skillswitch.router.requests import prepare_text, split_clauses
from skillswitch.router.scoring import Scores, choose_skills, confidence
from skillswitch.router.threads import single_threaded_blas

__all__ = ["Router", "SkillClassifier"]

_CANDIDATES = 5


class SkillClassifier(Protocol):
    """Scores every skill for a batch of embeddings."""

    @property
    def skills(self) -> tuple[str, ...]: ...

    @property
    def name(self) -> str: ...

    def scores(self, queries: Embeddings) -> Scores: ...


class Router:
    """Classifies requests into the skills they need, rejecting what is out of scope.

    >>> router = Router.from_config(default_config())  # doctest: +SKIP
    >>> router.route("what is 15% of 80").skill_names  # doctest: +SKIP
    ('math',)
    """

    def __init__(
        self,
        encoder: Encoder,
        classifier: SkillClassifier,
        *,
        threshold: float,
        top_k: int = 3,
        margin: float = 0.05,
        max_chars: int = 2000,
        out_of_scope_label: str = "out_of_scope",
        split_clauses: bool = True,
        calibration: Calibration | None = None,
    ) -> None:
        self.encoder = encoder
        self.classifier = classifier
        self.threshold = threshold
        self.top_k = top_k
        self.margin = margin
        self.max_chars = max_chars
        self.out_of_scope_label = out_of_scope_label
        self.split_clauses = split_clauses
        self.calibration = calibration

    @property
    def skills(self) -> tuple[str, ...]:
        return self.classifier.skills

    @classmethod
    def from_config(cls, config: Config, *, cache_dir: Path | None = None) -> Router:
        """Build the encoder and classifier a config describes (embedding examples via the
        on-disk cache) and calibrate the threshold when it is ``auto``."""
        settings = config.router
        root = cache_dir or environment.cache_dir(settings.cache_dir)
        if not isinstance(settings.classifier, ExemplarClassifierConfig):
            from skillswitch.router.trained import load_trained_router

            return load_trained_router(
                settings.classifier.artifact,
                threshold=settings.threshold,
                threads=settings.encoder.threads if settings.encoder.kind == "minilm" else 2,
                top_k=settings.top_k,
                margin=settings.margin,
                max_chars=settings.max_chars,
                out_of_scope_label=config.out_of_scope.label,
                split_clauses=settings.split_clauses,
            )
        encoder = build_encoder(settings.encoder, root)
        cache = EmbeddingCache(root / "embeddings.sqlite")
        try:
            return cls.from_examples(
                encoder,
                {skill.name: skill.examples for skill in config.skills},
                config.out_of_scope.examples,
                neighbours=settings.classifier.neighbours,
                threshold=settings.threshold,
                objective=settings.threshold_objective,
                cache=cache,
                top_k=settings.top_k,
                margin=settings.margin,
                max_chars=settings.max_chars,
                out_of_scope_label=config.out_of_scope.label,
                split_clauses=settings.split_clauses,
            )
        finally:
            cache.close()

    @classmethod
    def from_examples(
        cls,
        encoder: Encoder,
        examples: Mapping[str, Sequence[str]],
        out_of_scope_examples: Sequence[str] = (),
        *,
        neighbours: int = 1,
        threshold: float | str = "auto",
        objective: ThresholdObjective = "balanced",
        cache: EmbeddingCache | None = None,
        top_k: int = 3,
        margin: float = 0.05,
        max_chars: int = 2000,
        out_of_scope_label: str = "out_of_scope",
        split_clauses: bool = True,
    ) -> Router:
        """A zero-training router from example utterances per skill."""
        skills = list(examples)
        texts = [text for skill in skills for text in examples[skill]]
        labels = [index for index, skill in enumerate(skills) for _ in examples[skill]]
        every = texts + list(out_of_scope_examples)
        vectors = cache.encode(encoder, every) if cache is not None else encoder.encode(every)
        classifier = ExemplarClassifier(
            skills,
            vectors[: len(texts)],
            labels,
            reject=vectors[len(texts) :] if out_of_scope_examples else None,
            neighbours=neighbours,
        )
        calibration = None
        if threshold == "auto":
            calibration = _calibrate_leave_one_out(classifier, objective)
            chosen = calibration.threshold
        else:
            chosen = float(threshold)
        return cls(
            encoder,
            classifier,
            threshold=chosen,
            top_k=top_k,
            margin=margin,
            max_chars=max_chars,
            out_of_scope_label=out_of_scope_label,
            split_clauses=split_clauses,
            calibration=calibration,
        )

    def route(self, request: str | bytes) -> RoutingDecision:
        """Decide the skills of one request. Raises :class:`RequestError` for bad input."""
        return self.route_many([request])[0]

    def route_many(self, requests: Sequence[str | bytes]) -> list[RoutingDecision]:
        """Decide many requests with one batched encoding (timings are per-request averages).

        Short compound requests ("translate this and then convert that") are also split into
        clauses, encoded in the same batch; a clause's best skill joins the decision.
        """
        if not requests:
            return []
        started = time.perf_counter()
        prepared = [prepare_text(r, max_chars=self.max_chars) for r in requests]
        texts = [text for text, _ in prepared]
        clause_rows: list[range] = []
        for text in [t for t, _ in prepared]:
            clauses = split_clauses(text) if self.split_clauses else []
            clause_rows.append(range(len(texts), len(texts) + len(clauses)))
            texts.extend(clauses)
        vectors = self.encoder.encode(texts)
        encoded = time.perf_counter()
        with single_threaded_blas(len(texts)):
            scores = self.classifier.scores(vectors)
        levels = confidence(scores)
        decisions = [
            self._decide(scores, levels, i, clause_rows[i], prepared[i][1])
            for i in range(len(requests))
        ]
        finished = time.perf_counter()
        n = len(requests)
        timing = RoutingTiming(
            encode_ms=(encoded - started) * 1000 / n,
            classify_ms=(finished - encoded) * 1000 / n,
            total_ms=(finished - started) * 1000 / n,
        )
        return [d.with_timing(timing) for d in decisions]

    def calibrate(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        objective: ThresholdObjective = "balanced",
        cache: EmbeddingCache | None = None,
    ) -> Calibration:
        """Choose and adopt the threshold on labelled calibration data (a validation split,
        never test data). Labels equal to ``out_of_scope_label`` mark items to reject; data
        without any gives a threshold that rejects nothing (there is nothing to trade against)."""
        vectors = (
            cache.encode(self.encoder, texts) if cache is not None else self.encoder.encode(texts)
        )
        calibration = calibrate_scores(
            self.classifier.scores(vectors),
            self.skills,
            labels,
            out_of_scope_label=self.out_of_scope_label,
            objective=objective,
            keep_without_negatives=1.0,
        )
        self.threshold = calibration.threshold
        self.calibration = calibration
        return calibration

    def score(self, requests: Sequence[str]) -> Scores:
        """Raw classifier scores for already-validated texts (used by eval and calibration)."""
        return self.classifier.scores(self.encoder.encode(list(requests)))

    def _decide(
        self,
        scores: Scores,
        levels: npt.NDArray[np.float32],
        row: int,
        clause_rows: range,
        truncated: bool,
    ) -> RoutingDecision:
        skill_row = scores.skills[row]
        level = float(levels[row])
        order = np.argsort(-skill_row, kind="stable")[:_CANDIDATES]
        candidates = tuple(SkillScore(self.skills[i], float(skill_row[i])) for i in order)
        out_of_scope = level < self.threshold
        chosen: list[int] = []
        if not out_of_scope:
            close = choose_skills(skill_row, top_k=self.top_k, margin=self.margin)
            asked = [
                int(np.argmax(scores.skills[clause]))
                for clause in clause_rows
                if levels[clause] >= self.threshold
            ]
            # The best skill first; then what a clause asks for explicitly, then skills that
            # are merely close in score: when top_k cuts, the explicit asks survive.
            for index in [close[0], *asked, *close[1:]]:
                if index not in chosen:
                    chosen.append(index)
            chosen = [chosen[0], *sorted(chosen[1 : self.top_k], key=lambda i: -skill_row[i])]
        return RoutingDecision(
            skills=tuple(SkillScore(self.skills[i], float(skill_row[i])) for i in chosen),
            candidates=candidates,
            out_of_scope=out_of_scope,
            out_of_scope_label=self.out_of_scope_label,
            confidence=level,
            threshold=self.threshold,
            encoder=self.encoder.name,
            classifier=self.classifier.name,
            timing=_NO_TIMING,
            truncated=truncated,
        )


_NO_TIMING = RoutingTiming(0.0, 0.0, 0.0)


def _calibrate_leave_one_out(
    classifier: ExemplarClassifier, objective: ThresholdObjective
) -> Calibration:
    inside, labels, outside = classifier.leave_one_out()
    levels = [confidence(inside)]
    correct = [inside.skills.argmax(axis=1) == labels]
    rejected = [np.zeros(labels.shape[0], dtype=bool)]
    if outside is not None:
        levels.append(confidence(outside))
        correct.append(np.zeros(outside.skills.shape[0], dtype=bool))
        rejected.append(np.ones(outside.skills.shape[0], dtype=bool))
    return choose_threshold(
        np.concatenate(levels), np.concatenate(correct), np.concatenate(rejected), objective
    )
