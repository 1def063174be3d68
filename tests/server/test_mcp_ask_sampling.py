"""The MCP ``ask`` tool takes OpenAI's sampling settings, as the HTTP API and ``Switch.run``
do: they reach the expert's request over its own configured ones (the real loopback upstream
records the bodies it receives), and values out of range get an error naming the argument."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from skillswitch.config import parse_config
from skillswitch.server.mcp import SkillSwitchMCPServer
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop")


@pytest.fixture
async def client(upstream: str, cache_root: Path) -> AsyncIterator[Client]:
    experts = f"""
experts:
  - {{name: generalist, base_url: '{upstream}', model: echo,
      sampling: {{temperature: 0.7, seed: 5}}}}
"""
    switch = Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)
    async with switch, Client(SkillSwitchMCPServer(switch)) as connected:
        yield connected


def sent_sampling(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in SAMPLING if name in body}


async def test_ask_s_sampling_reaches_the_expert_over_its_own(
    client: Client, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    result = await client.call_tool(
        "ask",
        {
            "request": "who discovered penicillin?",
            "temperature": 0,
            "max_tokens": 40,
            "top_p": 0.5,
            "stop": "END",
        },
    )
    assert not result.is_error, result
    assert [sent_sampling(body) for body in chat_requests[before:]] == [
        {"temperature": 0, "top_p": 0.5, "max_tokens": 40, "seed": 5, "stop": ["END"]}
    ]


async def test_ask_without_sampling_keeps_the_expert_s_own(
    client: Client, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    result = await client.call_tool("ask", {"request": "who discovered penicillin?"})
    assert not result.is_error, result
    assert [sent_sampling(body) for body in chat_requests[before:]] == [
        {"temperature": 0.7, "seed": 5}
    ]


async def test_ask_lists_its_sampling_arguments(client: Client) -> None:
    ask = next(tool for tool in (await client.list_tools()).tools if tool.name == "ask")
    properties = ask.input_schema["properties"]
    assert set(properties) == {"request", *SAMPLING, "response_format"}
    assert ask.input_schema["required"] == ["request"]
    assert {"type": "number", "minimum": 0, "maximum": 2} in properties["temperature"]["anyOf"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"temperature": 3}, "temperature: 3 is greater than the maximum of 2"),
        ({"temperature": "0.2"}, "temperature: '0.2' is not of type 'number' or 'null'"),
        ({"max_tokens": 0}, "max_tokens: 0 is less than the minimum of 1"),
        ({"max_tokens": 2.5}, "max_tokens: 2.5 is not of type 'integer' or 'null'"),
        ({"seed": 2**64}, "seed: 18446744073709551616 is greater than the maximum"),
        ({"top_p": 0}, "top_p: 0 is less than or equal to the minimum of 0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop: ['a', 'b', 'c', 'd', 'e'] is too long"),
        ({"stop": [""]}, "stop.0: '' should be non-empty"),
        ({"stop": 5}, "stop: 5 is not of type 'string' or 'array' or 'null'"),
    ],
)
async def test_bad_sampling_is_named(
    client: Client, chat_requests: list[dict[str, Any]], arguments: dict[str, Any], expected: str
) -> None:
    before = len(chat_requests)
    result = await client.call_tool("ask", {"request": "hello", **arguments})
    assert result.is_error
    text = str(result.content[0].text)  # type: ignore[union-attr]
    assert expected in text
    assert "ask takes {request: string, temperature: number (optional)" in text
    assert len(chat_requests) == before  # no expert was asked


async def test_ask_answers_in_the_form_asked(
    client: Client, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    json_mode = {"type": "json_object"}
    arguments = {"request": "who discovered penicillin?", "response_format": json_mode}
    result = await client.call_tool("ask", arguments)
    assert not result.is_error, result
    assert result.structured_content is not None
    answer = result.structured_content["answer"]
    assert json.loads(answer) == {"echo": "who discovered penicillin?"}
    assert [body["response_format"] for body in chat_requests[before:]] == [json_mode]
    refused = await client.call_tool(
        "ask", {"request": "hello", "response_format": {"type": "json_schema"}}
    )
    assert refused.is_error
    text = str(refused.content[0].text)  # type: ignore[union-attr]
    assert "response_format.json_schema is None; give an object with a name" in text
