"""The caller's tools through ``Switch.run``/``stream``: offered to the experts that can call
tools, handed back as ``answer.tool_calls``, resumed with their results by the expert that asked.

Experts are the real OpenAI-compatible upstream on loopback (tests/support/chat_app.py, model
``client-tools``) or ``FunctionExpert``s where the logic under test is the switch's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import FunctionExpert, Message, TestExpert
from skillswitch.agents.client_tools import (
    ClientToolCall,
    offered_client_tools,
    parse_client_tools,
)
from skillswitch.agents.messages import parse_messages
from skillswitch.agents.tool_calling import ToolCallingExpert
from skillswitch.config import parse_config
from skillswitch.exceptions import ExpertsFailedError, RequestError
from skillswitch.switch import Switch
from skillswitch.tools.builtin import BUILTIN_TOOLS
from skillswitch.trace import Answer
from tests.support.client_tools import ASK, WEATHER
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

CLOCK = {"type": "function", "function": {"name": "get_time"}}


def make(upstream: str, cache_root: Path, experts: str, **overrides: Any) -> Switch:
    text = DEFAULT_SKILLS + f"\nexperts:\n{experts}\ndispatch: {{max_experts: 2}}\n"
    return Switch.from_config(parse_config(text), overrides=overrides, cache_dir=cache_root)


def one_expert(upstream: str, cache_root: Path) -> Switch:
    return make(
        upstream, cache_root, f"  - {{name: helper, base_url: '{upstream}', model: client-tools}}"
    )


def resumed(request: Sequence[dict[str, Any]], answer: Answer, result: str) -> list[Any]:
    """The next request of a caller that ran the tools: the calls, then one result each."""
    calls = [call.to_openai() for call in answer.tool_calls]
    return [
        *request,
        {"role": "assistant", "content": answer.text or None, "tool_calls": calls},
        *(
            {"role": "tool", "tool_call_id": call.id, "content": result}
            for call in answer.tool_calls
        ),
    ]


async def test_an_expert_asks_for_the_callers_tool_and_resumes_with_its_result(
    upstream: str, cache_root: Path
) -> None:
    request = [{"role": "user", "content": ASK}]
    async with one_expert(upstream, cache_root) as switch:
        answer = await switch.run(request, tools=[WEATHER, CLOCK])
        assert answer.tool_calls == (ClientToolCall("call_0", "get_weather", '{"city": "Paris"}'),)
        trace = answer.trace.to_dict()
        assert trace["aggregation"]["mode"] == "tool_calls"
        assert trace["aggregation"]["tool_calls"] == [call.to_dict() for call in answer.tool_calls]
        assert trace["results"][0]["client_tool_calls"] == trace["aggregation"]["tool_calls"]
        assert answer.to_dict()["tool_calls"] == trace["aggregation"]["tool_calls"]

        final = await switch.run(resumed(request, answer, "18 C, sunny"), tools=[WEATHER, CLOCK])
    assert final.tool_calls == ()
    assert final.text == "offered ['get_weather', 'get_time']; the tool said: 18 C, sunny"
    (selection,) = final.trace.selections
    assert selection.expert == "helper"
    assert "resumes with their results" in selection.reason


async def test_tools_and_tool_choice_reach_the_upstream_as_sent(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    async with one_expert(upstream, cache_root) as switch:
        before = len(chat_requests)
        answer = await switch.run(ASK, tools=[WEATHER, CLOCK], tool_choice=choice)
    (sent,) = chat_requests[before:]
    assert sent["tools"] == [
        WEATHER,
        {
            **CLOCK,
            "function": {
                **CLOCK["function"],
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    assert sent["tool_choice"] == choice
    assert [call.name for call in answer.tool_calls] == ["get_time"]


async def test_a_streamed_tool_call_is_assembled_from_its_pieces(
    upstream: str, cache_root: Path
) -> None:
    async with one_expert(upstream, cache_root) as switch:
        events = [event async for event in switch.stream(ASK, tools=[WEATHER])]
    *deltas, answer = events
    assert deltas == []  # the model wrote no text, only the call
    assert isinstance(answer, Answer)
    assert answer.tool_calls == (ClientToolCall("call_0", "get_weather", '{"city": "Paris"}'),)


async def test_the_best_ranked_expert_that_asks_wins_and_alone_resumes(
    upstream: str, cache_root: Path
) -> None:
    offered: list[tuple[str, ...] | None] = []

    def asker(messages: Sequence[Message]) -> str | list[ClientToolCall]:
        tools = offered_client_tools()
        offered.append(None if tools is None else tools.names)
        if messages[-1].role == "tool":
            return f"it is {messages[-1].content}"
        return [ClientToolCall("call_7", "get_weather", '{"city": "Oslo"}')]

    switch = make(
        upstream,
        cache_root,
        f"""
  - {{name: writer, base_url: '{upstream}', model: echo}}
  - {{name: asker, base_url: '{upstream}', model: echo}}
""",
        writer=TestExpert("writer", reply="I cannot know the weather."),
        asker=FunctionExpert("asker", asker),
    )
    request = [{"role": "user", "content": "weather in Oslo?"}]
    async with switch:
        answer = await switch.run(request, tools=[WEATHER])
        assert [s.expert for s in answer.trace.selections] == ["writer", "asker"]
        assert answer.tool_calls[0].id == "call_7"
        aggregation = answer.trace.aggregation
        assert aggregation is not None
        assert aggregation.mode == "tool_calls"
        assert (
            aggregation.detail
            == "asker asks the caller to run get_weather; 1 other answer(s) not aggregated"
        )

        final = await switch.run(resumed(request, answer, "-3 C"), tools=[WEATHER])
    assert final.text == "it is -3 C"
    assert [s.expert for s in final.trace.selections] == ["asker"]
    assert offered == [("get_weather",), ("get_weather",)]


async def test_without_tools_nothing_is_offered(upstream: str, cache_root: Path) -> None:
    seen: list[object] = []

    def record(messages: Sequence[Message]) -> str:
        seen.append(offered_client_tools())
        return "plain"

    switch = make(
        upstream,
        cache_root,
        f"  - {{name: only, base_url: '{upstream}', model: echo}}",
        only=FunctionExpert("only", record),
    )
    async with switch:
        answer = await switch.run("hello there")
    assert (answer.text, answer.tool_calls, seen) == ("plain", (), [None])


async def test_a_required_call_needs_an_expert_that_can_call_tools(
    upstream: str, cache_root: Path
) -> None:
    switch = make(
        upstream,
        cache_root,
        f"""
  - {{name: clock, kind: tool, tool: clock}}
  - {{name: helper, base_url: '{upstream}', model: client-tools, skills: [translation]}}
""",
    )
    async with switch:
        with pytest.raises(
            RequestError,
            match=r"experts chosen for this request \(clock\) cannot call the caller's tools; name one that can \(helper\)",
        ):
            await switch.run(
                "what time is it", expert="clock", tools=[CLOCK], tool_choice="required"
            )
        answer = await switch.run("what time is it", expert="clock", tools=[CLOCK])
    assert answer.tool_calls == ()  # auto: an expert that cannot call tools just answers


async def test_a_tool_loop_expert_offers_its_own_tools_and_the_callers(
    upstream: str, cache_root: Path
) -> None:
    expert = ToolCallingExpert(
        "solver", upstream, "client-tools", tools=[BUILTIN_TOOLS["calculator"]()]
    )
    switch = make(
        upstream,
        cache_root,
        f"  - {{name: solver, base_url: '{upstream}', model: echo}}",
        solver=expert,
    )
    async with switch:
        own = await switch.run('add [[calculator {"expression": "2 + 3"}]]', tools=[WEATHER])
        theirs = await switch.run(ASK, tools=[WEATHER])
        none = await switch.run(ASK, tools=[WEATHER], tool_choice="none")
    assert own.tool_calls == ()
    assert own.text == "offered ['calculator', 'get_weather']; the tool said: 5"
    assert own.trace.dispatch is not None
    assert [call.tool for call in own.trace.dispatch.replies[0].tool_calls] == ["calculator"]
    assert [call.name for call in theirs.tool_calls] == ["get_weather"]
    assert none.tool_calls == ()  # tool_choice none: the caller's tools are not offered
    assert none.text.startswith("offered ['calculator'];")


async def test_a_callers_tool_named_like_the_experts_own_fails_that_expert_clearly(
    upstream: str, cache_root: Path
) -> None:
    expert = ToolCallingExpert(
        "solver", upstream, "client-tools", tools=[BUILTIN_TOOLS["calculator"]()]
    )
    switch = make(
        upstream,
        cache_root,
        f"  - {{name: solver, base_url: '{upstream}', model: echo}}",
        solver=expert,
    )
    clash = {"type": "function", "function": {"name": "calculator"}}
    async with switch:
        with pytest.raises(ExpertsFailedError) as failed:
            await switch.run("2 + 2", tools=[clash])
    (error,) = failed.value.exceptions
    assert "the caller's tools calculator have the names of this expert's own tools" in str(error)


def test_tools_and_tool_choice_are_checked_with_errors_naming_the_field() -> None:
    assert parse_client_tools(None, None) is None
    assert parse_client_tools([], "none") is None
    parsed = parse_client_tools([WEATHER], None)
    assert parsed is not None
    assert (parsed.choice.mode, parsed.names) == ("auto", ("get_weather",))
    cases = [
        ([{"type": "function"}], None, r"tools\[0\].function must be an object"),
        ([{"type": "function", "function": {"name": "x" * 65}}], None, r"tools\[0\].function.name"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": []}}],
            None,
            "JSON Schema object",
        ),
        ([WEATHER], "sometimes", "tool_choice is 'sometimes'"),
        (None, {"type": "function", "function": {"name": "f"}}, "not among the tools"),
    ]
    for tools, choice, message in cases:
        with pytest.raises(RequestError, match=message):
            parse_client_tools(tools, choice)


def test_conversations_with_tool_results_are_checked() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    good = parse_messages(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ]
    )
    assert good[1].tool_calls == (ClientToolCall("c1", "f", "{}"),)
    assert good[1].to_openai()["content"] is None
    assert good[2].to_openai() == {"role": "tool", "content": "done", "tool_call_id": "c1"}
    bad = {
        "answered twice": (
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "a"},
                {"role": "tool", "tool_call_id": "c1", "content": "b"},
            ],
            "already answered",
        ),
        "arguments not text": (
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "tool_calls": [{**call, "function": {"name": "f", "arguments": {}}}],
                },
            ],
            r"tool_calls\[0\].function.arguments must be JSON text",
        ),
        "only tool results": (
            [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "x"},
            ],
            "no user message",
        ),
    }
    for name, (messages, message) in bad.items():
        with pytest.raises(RequestError, match=message):
            parse_messages(messages)
        del name


def test_function_expert_rejects_a_reply_that_is_neither_text_nor_calls() -> None:
    expert = FunctionExpert("odd", lambda messages: 42)  # type: ignore[arg-type, return-value]
    import anyio

    with pytest.raises(
        TypeError, match="return the reply text \\(str\\) or a non-empty list of ClientToolCall"
    ):
        anyio.run(expert.answer, [Message("user", "hi")])
