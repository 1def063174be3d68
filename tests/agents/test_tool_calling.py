"""The call/observe loop against the real loopback OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import pytest

from skillswitch.agents import parse_messages
from skillswitch.agents.sampling import parse_sampling, request_sampling
from skillswitch.agents.tool_calling import ToolCallingExpert
from skillswitch.tools.builtin import BUILTIN_TOOLS

pytestmark = pytest.mark.anyio


def expert(upstream: str, model: str, **options: Any) -> ToolCallingExpert:
    tools = [BUILTIN_TOOLS["calculator"](), BUILTIN_TOOLS["clock"]()]
    return ToolCallingExpert(model, upstream, model, tools=tools, **options)


async def test_calls_a_tool_and_answers_with_its_result(
    upstream_app: tuple[str, Any],
) -> None:
    url, app = upstream_app
    app.state.requests.clear()
    async with expert(url, "tool-caller") as solver:
        reply = await solver.answer(parse_messages("17 * 23"))
    assert reply.text == "The result is 391"
    (call,) = reply.tool_calls
    assert (call.tool, call.result, call.is_error, call.step) == ("calculator", "391", False, 1)
    first, second = app.state.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"calculator", "clock"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "391"}
    assert reply.usage.prompt_tokens > 0


async def test_every_step_of_the_loop_is_asked_for_the_response_format(
    upstream_app: tuple[str, Any],
) -> None:
    url, app = upstream_app
    app.state.requests.clear()
    json_mode = parse_sampling({"response_format": {"type": "json_object"}})
    async with expert(url, "tool-caller") as solver:
        with request_sampling(json_mode):
            await solver.answer(parse_messages("17 * 23"))
    assert [body["response_format"] for body in app.state.requests] == [
        {"type": "json_object"},
        {"type": "json_object"},
    ]


async def test_step_limit_forces_an_answer(upstream_app: tuple[str, Any]) -> None:
    url, app = upstream_app
    app.state.requests.clear()
    async with expert(url, "tool-looper", max_steps=3) as looper:
        reply = await looper.answer(parse_messages("count"))
    assert reply.text == "gave up after 3 tool results"
    assert [c.step for c in reply.tool_calls] == [1, 2, 3]
    assert [r.get("tool_choice") for r in app.state.requests] == ["auto"] * 3 + ["none"]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("tool-unknown", "unknown tool 'teleport'; available tools: calculator, clock"),
        ("tool-bad-json", "arguments of calculator are not valid JSON"),
    ],
)
async def test_broken_calls_are_told_to_the_model(upstream: str, model: str, message: str) -> None:
    async with expert(upstream, model) as broken:
        reply = await broken.answer(parse_messages("go"))
    assert message in reply.text
    assert reply.tool_calls[0].is_error


async def test_concurrent_calls_keep_their_order(upstream: str) -> None:
    async with expert(upstream, "tool-both") as both:
        reply = await both.answer(parse_messages("6 * 7"))
    assert [c.tool for c in reply.tool_calls] == ["calculator", "clock"]
    assert reply.tool_calls[0].result == "42"
    assert "saw: ['42'," in reply.text


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        expert("http://127.0.0.1:9/v1", "m", max_steps=0)
