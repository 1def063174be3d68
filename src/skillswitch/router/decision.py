"""The router's output: which skills a request needs, or that it is out of scope, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["DECISION_SCHEMA", "RoutingDecision", "RoutingTiming", "SkillScore"]

DECISION_SCHEMA = "skillswitch.routing/1"


@dataclass(frozen=True, slots=True)
class SkillScore:
    """A skill and the classifier's score for it (cosine or probability, see ``classifier``)."""

    skill: str
    score: float


@dataclass(frozen=True, slots=True)
class RoutingTiming:
    """Where the time of one decision went, in milliseconds."""

    encode_ms: float
    classify_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """What the router decided for one request.

    ``skills`` are the chosen skills, best first (empty when ``out_of_scope``); ``candidates`` are
    the best-scoring skills considered, chosen or not, so a trace can show the runner-up.

    >>> decision = router.route("convert 5 miles to km")  # doctest: +SKIP
    >>> decision.skill_names  # doctest: +SKIP
    ('unit_conversion',)
    """

    skills: tuple[SkillScore, ...]
    candidates: tuple[SkillScore, ...]
    out_of_scope: bool
    out_of_scope_label: str
    confidence: float
    """The score compared with ``threshold`` (the best skill's, or -1 when a reject example won)."""
    threshold: float
    encoder: str
    classifier: str
    timing: RoutingTiming
    truncated: bool = False
    """True when the request exceeded ``router.max_chars`` and was routed on its head and tail."""

    @property
    def skill_names(self) -> tuple[str, ...]:
        return tuple(s.skill for s in self.skills)

    @property
    def label(self) -> str:
        """The best skill, or the out-of-scope label."""
        return self.out_of_scope_label if self.out_of_scope else self.skills[0].skill

    def with_timing(self, timing: RoutingTiming) -> RoutingDecision:
        return replace(self, timing=timing)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a stable schema (``schema`` names its version)."""
        return {
            "schema": DECISION_SCHEMA,
            "label": self.label,
            "skills": [{"skill": s.skill, "score": _number(s.score, 6)} for s in self.skills],
            "candidates": [
                {"skill": s.skill, "score": _number(s.score, 6)} for s in self.candidates
            ],
            "out_of_scope": self.out_of_scope,
            "confidence": _number(self.confidence, 6),
            "threshold": _number(self.threshold, 6),
            "encoder": self.encoder,
            "classifier": self.classifier,
            "timing_ms": {
                "encode": _number(self.timing.encode_ms, 3),
                "classify": _number(self.timing.classify_ms, 3),
                "total": _number(self.timing.total_ms, 3),
            },
            "truncated": self.truncated,
        }


def _number(value: float, digits: int) -> float | None:
    """Rounded for JSON; NaN and infinities are null, as pydantic writes them to HTTP and MCP
    clients (json.dumps wrote NaN/Infinity, which JSON parsers refuse; JSONResponse refused
    them with a 500). Found by fuzzing traces (tests/fuzz/test_trace.py)."""
    return round(value, digits) if math.isfinite(value) else None
