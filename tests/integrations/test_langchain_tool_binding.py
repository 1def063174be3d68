"""The caller's tools through LangChain: ``SkillSwitchChatModel.bind_tools`` over a real Switch,
and LangChain's own ``ChatOpenAI.bind_tools`` against ``skillswitch serve``. The expert is the
loopback upstream's ``client-tools`` model (tests/support/chat_app.py): it calls the tool the
user names as ``[[name {json arguments}]]`` and, given the result, answers with it."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from skillswitch.config import parse_config
from skillswitch.integrations.langchain import SkillSwitchChatModel
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.client_tools import ASK
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f"18 C and sunny in {city}"


@tool
def get_time(zone: str) -> str:
    """The time now in a time zone."""
    return f"noon in {zone}"


def build(upstream: str, cache_root: Path) -> Switch:
    experts = f"""
experts:
  - {{name: helper, base_url: '{upstream}', model: client-tools}}
  - {{name: clock, kind: tool, tool: clock, skills: [datetime]}}
dispatch: {{max_experts: 1}}
"""
    return Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)


@pytest.fixture(scope="module")
def model(upstream: str, cache_root: Path) -> Iterator[SkillSwitchChatModel]:
    chat = SkillSwitchChatModel(switch=build(upstream, cache_root), expert="helper")
    yield chat
    chat.close()


def run_the_tools(history: list[BaseMessage], reply: BaseMessage) -> list[BaseMessage]:
    tools = {"get_weather": get_weather, "get_time": get_time}
    calls = getattr(reply, "tool_calls", [])
    return [*history, reply, *(tools[call["name"]].invoke(call) for call in calls)]


def test_bound_tools_come_back_as_tool_calls_and_results_resume(
    model: SkillSwitchChatModel,
) -> None:
    bound = model.bind_tools([get_weather, get_time])
    history: list[BaseMessage] = [HumanMessage(ASK)]
    reply = bound.invoke(history)
    assert reply.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_0", "type": "tool_call"}
    ]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    history = run_the_tools(history, reply)
    assert isinstance(history[-1], ToolMessage)

    final = bound.invoke(history)
    assert final.tool_calls == []
    assert final.content == (
        "offered ['get_weather', 'get_time']; the tool said: 18 C and sunny in Paris"
    )
    trace = final.response_metadata["skillswitch"]
    assert [e["expert"] for e in trace["experts"]] == ["helper"]


def test_a_streamed_tool_call_adds_up_to_the_same_call(model: SkillSwitchChatModel) -> None:
    bound = model.bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(bound.stream([HumanMessage(ASK)]))
    whole = functools.reduce(lambda a, b: a + b, chunks)
    assert isinstance(whole, AIMessageChunk)
    assert whole.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_0", "type": "tool_call"}
    ]


@pytest.mark.anyio
async def test_async_calls_bind_the_same(model: SkillSwitchChatModel) -> None:
    reply = await model.bind_tools([get_weather]).ainvoke(ASK)
    assert [call["name"] for call in reply.tool_calls] == ["get_weather"]


def test_tool_choice_spellings(model: SkillSwitchChatModel) -> None:
    text = model.bind_tools([get_weather], tool_choice="none").invoke(ASK)
    assert text.tool_calls == []
    assert text.content == "offered ['get_weather']; the tool said: None"
    forced = model.bind_tools([get_weather, get_time], tool_choice="get_time").invoke(ASK)
    assert [call["name"] for call in forced.tool_calls] == ["get_time"]
    one = model.bind_tools([get_time], tool_choice=True).invoke(ASK)
    assert [call["name"] for call in one.tool_calls] == ["get_time"]
    with pytest.raises(ValueError, match="tool_choice=True needs exactly one tool, got 2"):
        model.bind_tools([get_weather, get_time], tool_choice=True)
    with pytest.raises(Exception, match="cannot call the caller's tools"):
        model.bind_tools([get_time], tool_choice="any").invoke("what time is it", expert="clock")


def test_chat_openai_binds_tools_against_skillswitch_serve(upstream: str, cache_root: Path) -> None:
    with serve(create_app(build(upstream, cache_root), mcp=False), lifespan="on") as base:
        chat = ChatOpenAI(
            model="helper",
            base_url=f"{base}/v1",
            api_key="sk-unused-on-loopback",  # type: ignore[arg-type]
            max_retries=0,
        ).bind_tools([get_weather])
        history: list[BaseMessage] = [HumanMessage(ASK)]
        reply = chat.invoke(history)
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        final = chat.invoke(run_the_tools(history, reply))
        assert final.content == "offered ['get_weather']; the tool said: 18 C and sunny in Paris"
        streamed = functools.reduce(lambda a, b: a + b, chat.stream(history))
        assert isinstance(streamed, AIMessageChunk)
        assert [c["name"] for c in streamed.tool_calls] == ["get_weather"]
