"""Switch end to end: the real router, real and fake experts, the real loopback upstream."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import FunctionExpert, Message, TestExpert, TextDelta
from skillswitch.config import parse_config
from skillswitch.exceptions import (
    ExpertHTTPError,
    ExpertsFailedError,
    NoExpertError,
    UnknownExpertError,
)
from skillswitch.switch import Switch
from skillswitch.trace import TRACE_SCHEMA, Answer
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio


def config(upstream: str, experts: str, dispatch: str = "") -> Any:
    return parse_config(DEFAULT_SKILLS + f"\nexperts:\n{experts}\n" + dispatch)


def make(upstream: str, cache_root: Path, **overrides: Any) -> Switch:
    experts = f"""
  - {{name: calculator, base_url: '{upstream}', model: echo, skills: [math, unit_conversion]}}
  - {{name: polyglot, base_url: '{upstream}', model: echo, skills: [translation]}}
  - {{name: generalist, base_url: '{upstream}', model: echo}}
  - {{name: judge, base_url: '{upstream}', model: echo, skills: [smalltalk]}}
"""
    dispatch = "dispatch: {max_experts: 2, aggregator: judge, answer_rule: last_number}\n"
    return Switch.from_config(
        config(upstream, experts, dispatch), overrides=overrides, cache_dir=cache_root
    )


async def test_run_recruits_by_skill_and_synthesises_disagreement(
    upstream: str, cache_root: Path
) -> None:
    seen: list[Sequence[Message]] = []

    def judge(messages: Sequence[Message]) -> str:
        seen.append(messages)
        return "It is 391."

    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="17 * 23 = 391"),
        generalist=TestExpert("generalist", reply="about 400"),
        judge=FunctionExpert("judge", judge),
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    assert answer.text == "It is 391."
    trace = answer.trace.to_dict()
    assert json.loads(json.dumps(trace)) == trace
    assert trace["schema"] == TRACE_SCHEMA
    assert trace["routing"]["skills"][0]["skill"] == "math"
    assert [e["expert"] for e in trace["experts"]] == ["calculator", "generalist"]
    assert trace["experts"][0]["reason"].startswith("serves skill 'math'")
    assert trace["aggregation"]["mode"] == "synthesised"
    assert trace["aggregation"]["answers"] == ["391", "400"]
    assert [r["output"] for r in trace["results"]] == ["17 * 23 = 391", "about 400"]
    assert "17 * 23 = 391" in seen[0][1].content


async def test_agreeing_experts_skip_the_aggregator(upstream: str, cache_root: Path) -> None:
    judge = TestExpert("judge", reply="never")
    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="The result is 391"),
        generalist=TestExpert("generalist", reply="391"),
        judge=judge,
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    assert answer.trace.aggregation is not None
    assert answer.trace.aggregation.mode == "agreement"
    assert judge.calls == []


async def test_real_upstream_expert_and_messages_input(upstream: str, cache_root: Path) -> None:
    switch = make(upstream, cache_root, generalist=TestExpert("generalist", reply="echo: ignored"))
    async with switch:
        answer = await switch.run(
            [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "translate good night into french"},
            ]
        )
    results = answer.trace.to_dict()["results"]
    assert results[0]["expert"] == "polyglot"
    assert results[0]["output"] == "echo: translate good night into french"
    assert results[0]["usage"]["prompt_tokens"] == 7


async def test_out_of_scope_requests_get_the_configured_reply(
    upstream: str, cache_root: Path
) -> None:
    calculator = TestExpert("calculator")
    switch = make(upstream, cache_root, calculator=calculator)
    async with switch:
        answer = await switch.run("transfer 300 dollars from checking to savings")
    assert answer.out_of_scope
    assert answer.text.startswith("Sorry")
    assert answer.trace.dispatch is None
    assert calculator.calls == []


async def test_stream_one_expert_token_by_token(upstream: str, cache_root: Path) -> None:
    switch = Switch.from_config(
        config(upstream, f"  - {{name: solo, base_url: '{upstream}', model: echo}}"),
        cache_dir=cache_root,
    )
    async with switch:
        events = [event async for event in switch.stream("translate thanks into german")]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert len(deltas) > 2
    assert "".join(deltas) == answer.text == "echo: translate thanks into german"


async def test_stream_several_experts_streams_the_synthesis(
    upstream: str, cache_root: Path
) -> None:
    """Several experts disagree: the aggregator's synthesis streams token by token (here the
    real loopback upstream, streaming), with the same trace as ``run`` gives."""
    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="17 * 23 = 391"),
        generalist=TestExpert("generalist", reply="about 400"),
    )
    async with switch:
        events = [event async for event in switch.stream("what is 17 times 23")]
        ran = await switch.run("what is 17 times 23")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert len(deltas) > 2
    assert "".join(deltas) == answer.text == ran.text
    assert answer.text.startswith("echo: ")  # the judge echoes the aggregation prompt
    trace, ran_trace = answer.trace.to_dict(), ran.trace.to_dict()
    assert trace["aggregation"]["mode"] == ran_trace["aggregation"]["mode"] == "synthesised"
    assert trace["experts"] == ran_trace["experts"]
    assert trace["usage"]["prompt_tokens"] == ran_trace["usage"]["prompt_tokens"] > 0


async def test_stream_falls_back_to_the_best_reply_when_the_aggregator_fails_first(
    upstream: str, cache_root: Path
) -> None:
    def broken(messages: Sequence[Message]) -> str:
        raise ExpertHTTPError("judge", 400, "bad request")

    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="17 * 23 = 391"),
        generalist=TestExpert("generalist", reply="about 400"),
        judge=FunctionExpert("judge", broken),
    )
    async with switch:
        events = [event async for event in switch.stream("what is 17 times 23")]
    answer = events[-1]
    assert isinstance(answer, Answer)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["17 * 23 = 391"]
    assert answer.text == "17 * 23 = 391"
    aggregation = answer.trace.aggregation
    assert aggregation is not None
    assert aggregation.mode == "aggregator_failed"
    assert "HTTP 400" in (aggregation.error or "")


async def test_stream_several_agreeing_experts_is_one_delta(
    upstream: str, cache_root: Path
) -> None:
    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="The result is 391"),
        generalist=TestExpert("generalist", reply="391"),
        judge=TestExpert("judge", reply="never"),
    )
    async with switch:
        events = [event async for event in switch.stream("what is 17 times 23")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["The result is 391"]


def test_run_sync_and_failures(upstream: str, cache_root: Path) -> None:
    switch = Switch.from_config(
        config(upstream, f"  - {{name: broken, base_url: '{upstream}', model: fail-400}}"),
        cache_dir=cache_root,
    )
    with pytest.raises(ExpertsFailedError) as caught:
        switch.run_sync("what is 2+2")
    assert "HTTP 400" in str(caught.value.exceptions[0])
    only_math = Switch.from_config(
        config(
            upstream, f"  - {{name: calc, base_url: '{upstream}', model: echo, skills: [math]}}"
        ),
        cache_dir=cache_root,
    )
    with pytest.raises(NoExpertError, match="no expert serves the skills 'translation'"):
        only_math.run_sync("translate hello into spanish")
    with pytest.raises(UnknownExpertError, match="did you mean 'calc'"):
        Switch.from_config(
            config(upstream, f"  - {{name: calc, base_url: '{upstream}', model: echo}}"),
            overrides={"calk": TestExpert("calk")},
            cache_dir=cache_root,
        )


def test_config_cross_references_for_experts(upstream: str) -> None:
    from skillswitch.exceptions import ConfigError

    with pytest.raises(ConfigError) as caught:
        config(
            upstream,
            f"  - {{name: a, base_url: '{upstream}', model: m, fallbacks: [bb]}}\n"
            f"  - {{name: b, base_url: '{upstream}', model: m, fallbacks: [a, b]}}",
            "dispatch: {aggregator: judge}\n",
        )
    issues = {issue.path: issue.message for issue in caught.value.issues}
    assert "unknown expert 'bb'" in issues["experts[0].fallbacks[0]"]
    assert "experts[1].fallbacks[0]" not in issues
    assert "'b' is the expert itself; name another" in issues["experts[1].fallbacks[1]"]
    assert "dispatch.aggregator" in issues


def test_a_skill_less_aggregator_only_aggregates(upstream: str, cache_root: Path) -> None:
    switch = Switch.from_config(
        config(
            upstream,
            f"  - {{name: general, base_url: '{upstream}', model: echo}}\n"
            f"  - {{name: judge, base_url: '{upstream}', model: echo}}",
            "dispatch: {aggregator: judge}\n",
        ),
        cache_dir=cache_root,
    )
    decision = switch.route("what is 2+2")
    assert [s.expert for s in switch.select(decision)] == ["general"]


async def test_configured_tools_give_a_tool_calling_expert(upstream: str, cache_root: Path) -> None:
    experts = (
        f"  - {{name: solver, base_url: '{upstream}', model: tool-caller, tools: [calculator]}}"
    )
    switch = Switch.from_config(config(upstream, experts), cache_dir=cache_root)
    async with switch:
        answer = await switch.run("what is 17 * 23")
    assert answer.text.startswith("The result is")
    (result,) = answer.trace.to_dict()["results"]
    (call,) = result["tool_calls"]
    assert call["tool"] == "calculator"
    assert call["step"] == 1


def test_unknown_tools_are_config_errors() -> None:
    from skillswitch.config.models import BUILTIN_TOOL_NAMES
    from skillswitch.exceptions import ConfigError
    from skillswitch.tools.builtin import BUILTIN_TOOLS

    assert set(BUILTIN_TOOLS) == BUILTIN_TOOL_NAMES
    text = (
        DEFAULT_SKILLS
        + "\nexperts:\n  - {name: s, base_url: 'http://127.0.0.1:9/v1', model: m, "
        + "tools: [calculater]}\n"
    )
    with pytest.raises(ConfigError, match=r"unknown tool 'calculater'; did you mean 'calculator'"):
        parse_config(text)


async def test_follow_up_keeps_the_experts_unless_skills_change(
    upstream: str, cache_root: Path
) -> None:
    switch = make(
        upstream,
        cache_root,
        calculator=TestExpert("calculator", reply="391"),
        generalist=TestExpert("generalist", reply="391"),
        polyglot=TestExpert("polyglot", reply="merci"),
    )
    async with switch:
        first = await switch.run("what is 17 times 23")
        history = [
            {"role": "user", "content": "what is 17 times 23"},
            {"role": "assistant", "content": first.text},
        ]
        follow = await switch.run([*history, {"role": "user", "content": "and 17 times 24?"}])
        changed = await switch.run(
            [*history, {"role": "user", "content": "translate thank you into french"}]
        )
        stranger = await switch.run(
            [
                {"role": "user", "content": "what is 2 plus 2"},
                {"role": "assistant", "content": "a different answer"},
                {"role": "user", "content": "and 17 times 24?"},
            ]
        )
    kept = follow.trace.selections
    assert [s.expert for s in kept] == [s.expert for s in first.trace.selections]
    assert kept[0].reason == "kept from the previous turn (skill 'math' unchanged)"
    assert changed.trace.selections[0].expert == "polyglot"
    assert "kept" not in changed.trace.selections[0].reason
    assert "kept" not in stranger.trace.selections[0].reason
