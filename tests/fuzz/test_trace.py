"""The trace serializer (``Trace.to_dict``) on traces built from arbitrary decisions, selections,
replies, tool calls, attempts, aggregations and usages: always strict JSON (no NaN or Infinity,
which ``json.dumps`` would write and other parsers refuse) that round-trips, with the keys of
schema ``skillswitch.trace/1`` at every level."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from skillswitch.agents.aggregate import Aggregation
from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.dispatch import Attempt, Dispatch, ExpertResult
from skillswitch.agents.messages import Usage
from skillswitch.exceptions import ExpertError
from skillswitch.router.decision import RoutingDecision, RoutingTiming, SkillScore
from skillswitch.tools.base import ToolCall
from skillswitch.trace import TRACE_SCHEMA, Answer, Selection, SkillBasis, Trace
from tests.fuzz.profiles import fuzz_settings

# The keys of skillswitch.trace/1 (a change of keys is a new schema version).
TRACE_KEYS = {
    "schema",
    "routing",
    "recruitment",
    "experts",
    "results",
    "aggregation",
    "usage",
    "timing_ms",
}
ROUTING_KEYS = {
    "schema",
    "label",
    "skills",
    "candidates",
    "out_of_scope",
    "confidence",
    "threshold",
    "encoder",
    "classifier",
    "timing_ms",
    "truncated",
}
RECRUITMENT_KEYS = {"source", "weights", "keywords", "samples", "stages", "note"}
RESULT_KEYS = {
    "expert",
    "fallback_for",
    "ok",
    "output",
    "error",
    "latency_ms",
    "usage",
    "client_tool_calls",
    "tool_calls",
    "attempts",
}
TOOL_CALL_KEYS = {"tool", "arguments", "result", "is_error", "step", "duration_ms"}
ATTEMPT_KEYS = {"number", "outcome", "started_ms", "duration_ms", "waited_ms", "status", "error"}
AGGREGATION_KEYS = {"mode", "answers", "usage", "error", "detail", "tool_calls"}
USAGE_KEYS = {"prompt_tokens", "completion_tokens", "cost"}

TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates too
NAMES = st.text(min_size=1, max_size=12)
FLOATS = st.floats()  # NaN and infinities included: a price of .inf makes an infinite cost
TIMES = st.floats(min_value=0) | st.sampled_from([math.inf, math.nan])
COUNTS = st.integers(min_value=0, max_value=2**40)

USAGES = st.builds(Usage, COUNTS, COUNTS, FLOATS)
SCORES = st.builds(SkillScore, NAMES, FLOATS)
CLIENT_CALLS = st.builds(ClientToolCall, NAMES, NAMES, TEXT)
TOOL_CALLS = st.builds(ToolCall, NAMES, TEXT, TEXT, st.booleans(), COUNTS, TIMES)
REPLIES = st.builds(
    ExpertReply,
    expert=NAMES,
    text=TEXT,
    usage=USAGES,
    model=NAMES,
    finish_reason=st.none() | st.sampled_from(["stop", "length", "tool_calls", "x"]),
    latency_ms=TIMES,
    tool_calls=st.lists(TOOL_CALLS, max_size=3).map(tuple),
    client_tool_calls=st.lists(CLIENT_CALLS, max_size=2).map(tuple),
)
ATTEMPTS = st.builds(
    Attempt,
    expert=NAMES,
    number=COUNTS,
    started_ms=TIMES,
    duration_ms=TIMES,
    outcome=st.sampled_from(["ok", "error", "circuit_open", "deadline"]),
    error=st.none() | TEXT,
    status=st.none() | st.integers(100, 599),
    waited_ms=TIMES,
)


@st.composite
def results(draw: st.DrawFn) -> ExpertResult:
    ok = draw(st.booleans())
    expert = draw(NAMES)
    return ExpertResult(
        expert=expert,
        reply=draw(REPLIES) if ok else None,
        error=None if ok else ExpertError(expert, draw(TEXT)),
        attempts=tuple(draw(st.lists(ATTEMPTS, max_size=3))),
        fallback_for=draw(st.none() | NAMES),
    )


@st.composite
def decisions(draw: st.DrawFn) -> RoutingDecision:
    out_of_scope = draw(st.booleans())
    skills = () if out_of_scope else tuple(draw(st.lists(SCORES, min_size=1, max_size=3)))
    return RoutingDecision(
        skills=skills,
        candidates=tuple(draw(st.lists(SCORES, max_size=4))),
        out_of_scope=out_of_scope,
        out_of_scope_label=draw(NAMES),
        confidence=draw(FLOATS),
        threshold=draw(FLOATS),
        encoder=draw(NAMES),
        classifier=draw(NAMES),
        timing=RoutingTiming(draw(TIMES), draw(TIMES), draw(TIMES)),
        truncated=draw(st.booleans()),
    )


AGGREGATIONS = st.builds(
    Aggregation,
    text=TEXT,
    mode=st.sampled_from(
        ["pass_through", "agreement", "voted", "synthesised", "aggregator_failed", "tool_calls"]
    ),
    answers=st.lists(st.none() | TEXT, max_size=3).map(tuple),
    usage=USAGES,
    error=st.none() | TEXT,
    detail=st.none() | TEXT,
    tool_calls=st.lists(CLIENT_CALLS, max_size=2).map(tuple),
)
BASES = st.builds(
    SkillBasis,
    source=st.sampled_from(["router", "keywords", "declared"]),
    weights=st.dictionaries(NAMES, FLOATS, max_size=3),
    keywords=st.lists(NAMES, max_size=3).map(tuple),
    samples=st.lists(st.lists(NAMES, max_size=3).map(tuple), max_size=2).map(tuple),
    stages=st.lists(st.lists(NAMES, max_size=3).map(tuple), max_size=2).map(tuple),
    note=st.none() | TEXT,
)
TRACES = st.builds(
    Trace,
    decision=decisions(),
    selections=st.lists(st.builds(Selection, NAMES, st.none() | NAMES, TEXT), max_size=3).map(
        tuple
    ),
    dispatch=st.none()
    | st.builds(
        Dispatch,
        results=st.lists(results(), max_size=3).map(tuple),
        elapsed_ms=TIMES,
        deadline_hit=st.booleans(),
    ),
    aggregation=st.none() | AGGREGATIONS,
    usage=USAGES,
    route_ms=TIMES,
    total_ms=TIMES,
    basis=st.none() | BASES,
)


def keys(value: Any, expected: set[str]) -> None:
    assert isinstance(value, dict), value
    assert set(value) == expected, set(value) ^ expected


def check_usage(usage: Any) -> None:
    keys(usage, USAGE_KEYS)
    assert usage["cost"] is None or math.isfinite(usage["cost"])


@given(TRACES)
@fuzz_settings(examples=300, fuzz_examples=20_000)
def test_any_trace_is_strict_json_with_the_schemas_keys(trace: Trace) -> None:
    data = trace.to_dict()
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN, no Infinity
    assert json.loads(text) == data
    keys(data, TRACE_KEYS)
    assert data["schema"] == TRACE_SCHEMA
    keys(data["routing"], ROUTING_KEYS)
    if data["recruitment"] is not None:
        keys(data["recruitment"], RECRUITMENT_KEYS)
    for selection in data["experts"]:
        keys(selection, {"expert", "skill", "reason"})
    for result in data["results"]:
        keys(result, RESULT_KEYS)
        assert result["ok"] == (result["output"] is not None)
        if result["usage"] is not None:
            check_usage(result["usage"])
        for call in result["tool_calls"]:
            keys(call, TOOL_CALL_KEYS)
        for attempt in result["attempts"]:
            keys(attempt, ATTEMPT_KEYS)
    if data["aggregation"] is not None:
        keys(data["aggregation"], AGGREGATION_KEYS)
        check_usage(data["aggregation"]["usage"])
    check_usage(data["usage"])
    keys(data["timing_ms"], {"route", "dispatch", "total"})


@given(TRACES, TEXT)
@fuzz_settings(examples=100, fuzz_examples=5_000)
def test_an_answer_is_strict_json(trace: Trace, text: str) -> None:
    data = Answer(text, trace).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_an_infinite_cost_is_null() -> None:
    """prices: {input_per_million: .inf} in a config gives an infinite cost (the config takes
    it); json.dumps wrote it as Infinity, which is not JSON."""
    decision = RoutingDecision(
        skills=(SkillScore("math", 0.9),),
        candidates=(),
        out_of_scope=False,
        out_of_scope_label="out_of_scope",
        confidence=0.9,
        threshold=0.5,
        encoder="e",
        classifier="c",
        timing=RoutingTiming(0.1, 0.1, 0.2),
    )
    trace = Trace(decision, (), None, None, Usage(3, 2, math.inf), 0.2, 1.0)
    data = trace.to_dict()
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "cost": None}
    assert data["routing"]["confidence"] == 0.9
