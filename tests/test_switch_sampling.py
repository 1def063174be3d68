"""A caller's sampling settings reach every model that answers its request: the experts and
the aggregator, over each expert's configured settings (the real loopback upstream records the
bodies it receives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import TestExpert
from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError, RequestError
from skillswitch.switch import Switch
from skillswitch.trace import Answer
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

QUESTION = "what is 17 times 23"
SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop")


def make(upstream: str, cache_root: Path, **overrides: Any) -> Switch:
    experts = f"""
experts:
  - {{name: calculator, base_url: '{upstream}', model: echo, skills: [math],
      sampling: {{temperature: 0.7, seed: 5, max_tokens: 300}}}}
  - {{name: generalist, base_url: '{upstream}', model: echo}}
  - {{name: judge, base_url: '{upstream}', model: echo, skills: [smalltalk],
      sampling: {{temperature: 0.9, stop: ['###']}}}}
dispatch: {{max_experts: 2, aggregator: judge, answer_rule: last_number}}
"""
    return Switch.from_config(
        parse_config(DEFAULT_SKILLS + experts), overrides=overrides, cache_dir=cache_root
    )


def sent_sampling(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in SAMPLING if name in body}


async def test_experts_get_the_request_s_settings_over_their_own(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    async with make(upstream, cache_root) as switch:
        before = len(chat_requests)
        answer = await switch.run(QUESTION, sampling={"temperature": 0, "max_tokens": 40})
    assert [r.expert for r in answer.trace.selections] == ["calculator", "generalist"]
    bodies = chat_requests[before:]
    assert sorted(map(sent_sampling, bodies), key=len) == [
        {"temperature": 0, "max_tokens": 40},  # generalist: nothing of its own
        {"temperature": 0, "max_tokens": 40, "seed": 5},  # calculator keeps its seed
    ]


async def test_the_aggregator_gets_them_too_run_and_stream(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    disagreeing = {
        "calculator": TestExpert("calculator", reply="17 * 23 = 391"),
        "generalist": TestExpert("generalist", reply="about 400"),
    }
    asked = {"top_p": 0.5, "max_completion_tokens": 64, "stop": "\n\n"}
    async with make(upstream, cache_root, **disagreeing) as switch:
        before = len(chat_requests)
        answer = await switch.run(QUESTION, sampling=asked)
        assert answer.trace.aggregation is not None
        assert answer.trace.aggregation.mode == "synthesised"
        final: Answer | None = None
        async for event in switch.stream(QUESTION, sampling=asked):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        assert final.trace.aggregation is not None
        assert final.trace.aggregation.mode == "synthesised"
        bodies = chat_requests[before:]
    expected = {"temperature": 0.9, "top_p": 0.5, "max_tokens": 64, "stop": ["\n\n"]}
    assert [sent_sampling(b) for b in bodies] == [expected, expected]
    assert bodies[1]["stream"] is True


async def test_without_settings_each_expert_samples_as_configured(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    async with make(upstream, cache_root) as switch:
        before = len(chat_requests)
        await switch.run(QUESTION, expert="calculator")
        await switch.run(QUESTION, expert="generalist")
        await switch.run(QUESTION, expert="judge")
    assert [sent_sampling(b) for b in chat_requests[before:]] == [
        {"temperature": 0.7, "max_tokens": 300, "seed": 5},
        {},
        {"temperature": 0.9, "stop": ["###"]},
    ]


@pytest.mark.parametrize(
    ("stop", "needle"),
    [("[a, b, c, d, e]", "at most 4 items"), ("['']", "'' is empty or blank; give some text")],
)
def test_a_configured_stop_list_is_checked(upstream: str, stop: str, needle: str) -> None:
    experts = f"""
experts:
  - {{name: e, base_url: '{upstream}', model: echo, sampling: {{stop: {stop}}}}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(DEFAULT_SKILLS + experts)
    assert "sampling.stop" in str(caught.value)
    assert needle in str(caught.value)


async def test_a_single_streamed_expert_gets_them(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    async with make(upstream, cache_root) as switch:
        before = len(chat_requests)
        text = ""
        async for event in switch.stream(QUESTION, expert="generalist", sampling={"seed": 11}):
            if isinstance(event, Answer):
                text = event.text
    assert text == f"echo: {QUESTION}"
    (body,) = chat_requests[before:]
    assert sent_sampling(body) == {"seed": 11}


def test_bad_settings_are_the_caller_s_error_before_any_call(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    switch = make(upstream, cache_root)
    before = len(chat_requests)
    with pytest.raises(RequestError, match=r"temperature is 3; give a number from 0 to 2"):
        switch.run_sync(QUESTION, sampling={"temperature": 3})
    with pytest.raises(RequestError, match=r"unknown setting\(s\) top_k"):
        switch.run_sync(QUESTION, sampling={"top_k": 3})
    switch.close()
    assert len(chat_requests) == before
