"""The trace of one answered request: why it went where it went, what each expert said, what it
cost. One format for Python, HTTP (extension field) and MCP (structured content)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from skillswitch.agents.aggregate import Aggregation
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.dispatch import Dispatch
from skillswitch.agents.messages import Usage
from skillswitch.redaction import redact_json
from skillswitch.router.decision import RoutingDecision

__all__ = ["TRACE_SCHEMA", "Answer", "Routed", "Selection", "SkillBasis", "Trace"]

TRACE_SCHEMA = "skillswitch.trace/1"


@dataclass(frozen=True, slots=True)
class Selection:
    """An expert chosen for the request, and the skill that chose it."""

    expert: str
    skill: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Routed:
    """The route of a streamed request as planned, before any expert answers (the first event
    of ``Switch.stream(..., announce_route=True)``); the ``Answer``'s trace says what happened
    (a fallback may have answered instead)."""

    decision: RoutingDecision
    selections: tuple[Selection, ...]


@dataclass(frozen=True, slots=True)
class SkillBasis:
    """What experts were recruited on: the router's skills, or keywords from an extractor.

    ``weights``: profiled skill (or keyword) -> weight. ``keywords``/``samples``: the kept
    keywords and each extraction sample. ``stages``: expert names asked per cascade stage.
    """

    source: Literal["router", "keywords", "declared"]
    weights: Mapping[str, float] = field(default_factory=dict)
    keywords: tuple[str, ...] = ()
    samples: tuple[tuple[str, ...], ...] = ()
    stages: tuple[tuple[str, ...], ...] = ()
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "weights": {k: _number(float(v), 6) for k, v in self.weights.items()},
            "keywords": list(self.keywords),
            "samples": [list(sample) for sample in self.samples],
            "stages": [list(stage) for stage in self.stages],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Trace:
    decision: RoutingDecision
    selections: tuple[Selection, ...]
    dispatch: Dispatch | None
    aggregation: Aggregation | None
    usage: Usage
    route_ms: float
    total_ms: float
    basis: SkillBasis | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``schema`` names the version of this shape. Registered secrets are
        redacted (an expert's error may quote an upstream that echoed its key)."""
        return redact_json(self._as_dict())  # type: ignore[no-any-return]

    def _as_dict(self) -> dict[str, Any]:
        dispatch = self.dispatch
        return {
            "schema": TRACE_SCHEMA,
            "routing": self.decision.to_dict(),
            "recruitment": None if self.basis is None else self.basis.to_dict(),
            "experts": [
                {"expert": s.expert, "skill": s.skill, "reason": s.reason} for s in self.selections
            ],
            "results": []
            if dispatch is None
            else [
                {
                    "expert": result.expert,
                    "fallback_for": result.fallback_for,
                    "ok": result.reply is not None,
                    "output": None if result.reply is None else result.reply.text,
                    "error": None if result.error is None else str(result.error),
                    "latency_ms": None
                    if result.reply is None
                    else _number(result.reply.latency_ms, 3),
                    "usage": None if result.reply is None else _usage(result.reply.usage),
                    "client_tool_calls": []
                    if result.reply is None
                    else [call.to_dict() for call in result.reply.client_tool_calls],
                    "tool_calls": []
                    if result.reply is None
                    else [
                        {
                            "tool": call.tool,
                            "arguments": call.arguments,
                            "result": call.result,
                            "is_error": call.is_error,
                            "step": call.step,
                            "duration_ms": _number(call.duration_ms, 3),
                        }
                        for call in result.reply.tool_calls
                    ],
                    "attempts": [
                        {
                            "number": a.number,
                            "outcome": a.outcome,
                            "started_ms": _number(a.started_ms, 3),
                            "duration_ms": _number(a.duration_ms, 3),
                            "waited_ms": _number(a.waited_ms, 3),
                            "status": a.status,
                            "error": a.error,
                        }
                        for a in result.attempts
                    ],
                }
                for result in dispatch.results
            ],
            "aggregation": None
            if self.aggregation is None
            else {
                "mode": self.aggregation.mode,
                "answers": list(self.aggregation.answers),
                "usage": _usage(self.aggregation.usage),
                "error": self.aggregation.error,
                "detail": self.aggregation.detail,
                "tool_calls": [call.to_dict() for call in self.aggregation.tool_calls],
            },
            "usage": _usage(self.usage),
            "timing_ms": {
                "route": _number(self.route_ms, 3),
                "dispatch": None if dispatch is None else _number(dispatch.elapsed_ms, 3),
                "total": _number(self.total_ms, 3),
            },
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to a request and the trace of how it was made."""

    text: str
    trace: Trace

    @property
    def out_of_scope(self) -> bool:
        return self.trace.decision.out_of_scope

    @property
    def tool_calls(self) -> tuple[ClientToolCall, ...]:
        """Calls of the caller's tools the answer asks for: run them and send each result
        as a ``tool`` message in the next request (the text may then be empty)."""
        aggregation = self.trace.aggregation
        return () if aggregation is None else aggregation.tool_calls

    @property
    def finish_reason(self) -> str:
        """OpenAI's ``finish_reason``: ``tool_calls`` when the answer calls the caller's tools;
        the answering expert's own reason (``stop``, ``length``, ``content_filter``) when its
        reply is the answer as it came; else ``stop``."""
        if self.tool_calls:
            return "tool_calls"
        aggregation, dispatch = self.trace.aggregation, self.trace.dispatch
        if aggregation is None or aggregation.mode != "pass_through" or dispatch is None:
            return "stop"
        reason = dispatch.replies[0].finish_reason if dispatch.replies else None
        return reason if reason in ("stop", "length", "content_filter") else "stop"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "trace": self.trace.to_dict(),
        }


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": _number(usage.cost, 10),
    }


def _number(value: float, digits: int) -> float | None:
    """Rounded for JSON; NaN and infinities are null, as pydantic writes them to HTTP and MCP
    clients (json.dumps wrote NaN/Infinity, which JSON parsers refuse; JSONResponse refused
    them with a 500). Found by fuzzing traces (tests/fuzz/test_trace.py)."""
    return round(value, digits) if math.isfinite(value) else None
