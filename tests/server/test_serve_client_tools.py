"""The client's tools through ``skillswitch serve``, driven by the official ``openai`` client:
``tools``/``tool_choice`` reach the expert, its calls come back as OpenAI ``tool_calls`` (streamed
or not, ``finish_reason: "tool_calls"``), and the next request with the results resumes with the
expert that asked. The expert is the real loopback upstream (tests/support/chat_app.py, model
``client-tools``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.client_tools import ASK, WEATHER
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    experts = f"""
experts:
  - {{name: helper, base_url: '{upstream}', model: client-tools}}
  - {{name: clock, kind: tool, tool: clock, skills: [datetime]}}
dispatch: {{max_experts: 1}}
"""
    switch = Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)
    with serve(create_app(switch), lifespan="on") as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_a_tool_call_comes_back_and_its_result_resumes_the_expert(
    client: openai.OpenAI, chat_requests: list[dict[str, Any]]
) -> None:
    messages: list[Any] = [{"role": "user", "content": ASK}]
    before = len(chat_requests)
    first = client.chat.completions.create(model="helper", messages=messages, tools=[WEATHER])
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    (sent,) = chat_requests[before:]
    assert (sent["tools"], sent["tool_choice"]) == ([WEATHER], "auto")
    trace = first.model_extra["skillswitch"] if first.model_extra else {}
    assert trace["aggregation"]["mode"] == "tool_calls"

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ]
    final = client.chat.completions.create(model="skillswitch", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == (
        "offered ['get_weather']; the tool said: 18 C and sunny"
    )
    trace = final.model_extra["skillswitch"] if final.model_extra else {}
    assert [e["expert"] for e in trace["experts"]] == ["helper"]
    assert "resumes with their results" in trace["experts"][0]["reason"]


def test_a_streamed_tool_call_arrives_as_openai_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": ASK}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    trace: dict[str, Any] = {}
    text = ""
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += piece.id or ""
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
        if chunk.model_extra and chunk.model_extra.get("skillswitch"):
            trace = chunk.model_extra["skillswitch"]
    assert text == ""
    assert finish == "tool_calls"
    assert calls == {0: {"id": "call_0", "name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert trace["aggregation"]["tool_calls"] == [
        {"id": "call_0", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]


@pytest.mark.anyio
async def test_the_async_client_gets_the_same_calls(url: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused") as client:
        completion = await client.chat.completions.create(
            model="helper", messages=[{"role": "user", "content": ASK}], tools=[WEATHER]
        )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


def test_tool_choice_none_gets_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="helper",
        messages=[{"role": "user", "content": ASK}],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "offered ['get_weather']; the tool said: None"


def test_a_required_call_to_an_expert_that_cannot_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="cannot call the caller's tools"):
        client.chat.completions.create(
            model="clock",
            messages=[{"role": "user", "content": "what time is it"}],
            tools=[WEATHER],
            tool_choice="required",
        )
