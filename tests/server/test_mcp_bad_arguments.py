"""skillswitch's MCP tools called the wrong way, through the real ``mcp`` client: each call
gets an ``is_error`` result that names the bad argument (or tool) and the call's shape, never
pydantic's report and its URLs, and no argument is silently dropped."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from skillswitch.agents import FunctionExpert, Message
from skillswitch.config import parse_config
from skillswitch.server.mcp import SkillSwitchMCPServer
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

CONFIG = (
    DEFAULT_SKILLS
    + f"""
experts:
  - {{name: oracle, base_url: 'http://127.0.0.1:9/v1', model: unused}}
tools:
  servers:
    - name: builtin
      command: ['{sys.executable}', -m, skillswitch.tools.builtin_server]
"""
)


@pytest.fixture
async def client(cache_root: Path) -> AsyncIterator[Client]:
    def oracle(messages: Sequence[Message]) -> str:
        return f"the oracle read: {messages[-1].content}"

    switch = Switch.from_config(
        parse_config(CONFIG),
        overrides={"oracle": FunctionExpert("oracle", oracle)},
        cache_dir=cache_root,
    )
    async with switch, Client(SkillSwitchMCPServer(switch)) as connected:
        yield connected


async def error_of(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    text = str(result.content[0].text)  # type: ignore[union-attr]
    assert "pydantic" not in text
    assert "validation error for" not in text
    return text


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "ask",
            {"request": 5},
            "request: 5 is not of type 'string'; ask takes {request: string, temperature: number (optional)",
        ),
        (
            "ask",
            {},
            "'request' is a required property; ask takes {request: string, temperature: number (optional)",
        ),
        ("route", {"request": None}, "request: None is not of type 'string'"),
        (
            "ask",
            {"request": "hi", "k": 3},
            "unknown argument 'k'; ask takes {request: string, temperature: number (optional)",
        ),
        ("route", {"requests": "hi"}, "unknown argument 'requests' (did you mean 'request'?)"),
        ("list_skills", {"skill": "math"}, "list_skills takes no arguments"),
        ("find_tools", {"query": "time", "k": True}, "k: True is not of type 'integer'"),
        ("find_tools", {"query": "time", "k": "3"}, "k: '3' is not of type 'integer'"),
        ("find_tools", {"query": "time", "k": 2.5}, "k: 2.5 is not of type 'integer'"),
        ("find_tools", {"query": "time", "k": -1}, "k must be between 1 and 50, got -1"),
        ("find_tools", {"query": "time", "k": 10**30}, "k must be between 1 and 50"),
        ("find_tools", {"query": "  "}, "the query is empty; send the text"),
        ("ask", {"request": ""}, "the request is empty"),
    ],
)
async def test_own_tools_name_the_bad_argument(
    client: Client, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    assert expected in await error_of(client, tool, arguments)


async def test_unknown_tools_say_what_is_callable(client: Client) -> None:
    plain = await error_of(client, "nope", {})
    assert plain.startswith("unknown tool 'nope'; the tools are ask, route, list_skills")
    assert "builtin__calculator" in plain
    assert "skillswitch tools list" not in plain  # a CLI command means nothing to MCP clients
    assert "did you mean 'ask'?" in await error_of(client, "ask__", {})
    assert "did you mean 'builtin__calculator'" in await error_of(client, "builtin__calculate", {})
    proxied = await error_of(client, "builtin__calculator", {"expression": 5})
    assert "expression: 5 is not of type 'string'" in proxied
    good = await client.call_tool("builtin__calculator", {"expression": "17 * 23"})
    assert not good.is_error
    assert good.content[0].text == "391"  # type: ignore[union-attr]


async def test_a_tool_of_a_server_that_did_not_start_says_why(cache_root: Path) -> None:
    broken = CONFIG + "    - {name: broken, command: [/bin/sh, -c, 'exit 3']}\n"
    switch = Switch.from_config(parse_config(broken), cache_dir=cache_root)
    async with switch, Client(SkillSwitchMCPServer(switch)) as client:
        text = await error_of(client, "broken__anything", {})
        assert text.startswith("unknown tool 'broken__anything'")
        assert "MCP server 'broken' is not available: failed to start" in text
        good = await client.call_tool("builtin__calculator", {"expression": "2 ** 10"})
        assert good.content[0].text == "1024"  # type: ignore[union-attr]
