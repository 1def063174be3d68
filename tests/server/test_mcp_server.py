"""skillswitch as an MCP server: driven in-process by the ``mcp`` client (2026-07-28), over
stdio by a client we did not write, the MCP Inspector CLI (2025 handshake), and over stdio by the
``mcp`` client in both eras, told when an upstream's tool list changes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp import Client, StdioServerParameters

from skillswitch.agents import FunctionExpert, Message
from skillswitch.config import parse_config
from skillswitch.exceptions import ExpertDeclinedError
from skillswitch.server.mcp import SkillSwitchMCPServer
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.mcp_peers import FAULTY_SERVER, NODE_PEERS, REPO, peer

pytestmark = pytest.mark.anyio


def config_text(memory_file: Path) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - {{name: oracle, base_url: 'http://127.0.0.1:9/v1', model: unused}}
tools:
  servers:
    - name: time
      command: ['{peer("mcp-server-time")}', --local-timezone, UTC]
    - name: memory
      command: ['{peer("mcp-server-memory")}']
      env: {{MEMORY_FILE_PATH: '{memory_file}'}}
"""
    )


@pytest.fixture
async def client(cache_root: Path, tmp_path: Path) -> AsyncIterator[Client]:
    def oracle(messages: Sequence[Message]) -> str:
        return f"the oracle read: {messages[-1].content}"

    config = parse_config(config_text(tmp_path / "memory.jsonl"))
    switch = Switch.from_config(
        config, overrides={"oracle": FunctionExpert("oracle", oracle)}, cache_dir=cache_root
    )
    async with switch, Client(SkillSwitchMCPServer(switch)) as connected:
        yield connected


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def test_lists_its_tools_and_the_safe_upstream_ones(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"ask", "route", "list_skills", "find_tools"} <= set(tools)
    assert {"time__get_current_time", "memory__read_graph", "memory__create_entities"} <= set(tools)
    assert "memory__delete_entities" not in tools  # destructive: not proxied
    assert tools["time__get_current_time"].annotations.read_only_hint is True
    assert tools["route"].description.startswith("Where a request would go")
    assert "\n    " not in tools["ask"].description


async def test_ask_returns_the_answer_and_its_trace(client: Client) -> None:
    result = await client.call_tool("ask", {"request": "who discovered penicillin?"})
    assert not result.is_error
    structured = result.structured_content
    assert structured is not None
    assert structured["answer"] == "the oracle read: who discovered penicillin?"
    trace = structured["trace"]
    assert trace["schema"] == "skillswitch.trace/1"
    assert trace["routing"]["skills"][0]["skill"] == "general_knowledge"
    assert [e["expert"] for e in trace["experts"]] == ["oracle"]


async def test_route_and_list_skills(client: Client) -> None:
    routed = await client.call_tool("route", {"request": "convert 5 miles to km"})
    assert routed.structured_content is not None
    assert routed.structured_content["decision"]["label"] == "unit_conversion"
    skills = await client.call_tool("list_skills", {})
    listed = skills.structured_content["result"]  # type: ignore[index]
    math = next(s for s in listed if s["name"] == "math")
    assert math["experts"] == ["oracle"]
    assert math["description"].startswith("Arithmetic")


async def test_find_tools_ranks_the_upstream_catalogue(client: Client) -> None:
    found = await client.call_tool("find_tools", {"query": "what time is it in Tokyo?", "k": 3})
    assert found.structured_content is not None
    names = [tool["name"] for tool in found.structured_content["tools"]]
    assert set(names[:2]) == {"time__get_current_time", "time__convert_time"}
    assert "memory__delete_entities" not in names
    assert found.structured_content["no_tool_applies"] is False
    bad = await client.call_tool("find_tools", {"query": "time", "k": 0})
    assert bad.is_error
    assert "k must be between 1 and 50, got 0" in text_of(bad)


async def test_proxied_calls_are_checked_and_forwarded(client: Client) -> None:
    now = await client.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
    assert not now.is_error
    assert now.structured_content is not None
    assert now.structured_content["timezone"] == "Asia/Tokyo"
    wrong = await client.call_tool("time__get_current_time", {"timezone": 9})
    assert wrong.is_error
    assert "invalid arguments for time__get_current_time" in text_of(wrong)
    refused = await client.call_tool("memory__delete_entities", {"entityNames": ["x"]})
    assert refused.is_error
    assert "not proxied" in text_of(refused)
    unknown = await client.call_tool("time__get_curent_time", {})
    assert unknown.is_error
    assert "did you mean 'time__get_current_time'" in text_of(unknown)


async def test_bad_requests_get_clear_errors(client: Client) -> None:
    empty = await client.call_tool("ask", {"request": "   "})
    assert empty.is_error
    assert "the request is empty" in text_of(empty)
    missing = await client.call_tool("route", {})
    assert missing.is_error
    assert "request" in text_of(missing).lower()


def inspector(config: Path, *arguments: str) -> dict[str, Any]:
    node = NODE_PEERS / "mcp-inspector"
    if not node.exists():
        pytest.skip("the MCP Inspector is not installed; run `make mcp-peers`")
    command = [
        str(node),
        "--cli",
        "-e",
        f"SKILLSWITCH_CONFIG={config}",
        str(REPO / ".venv" / "bin" / "skillswitch"),
        "mcp",
        *arguments,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_mcp_inspector_drives_skillswitch_mcp_over_stdio(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(tmp_path / "memory.jsonl"))
    listed = inspector(config, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert {"ask", "route", "find_tools", "time__convert_time"} <= names
    routed = inspector(
        config,
        *("--method", "tools/call", "--tool-name", "route"),
        *("--tool-arg", "request=what time is it in Singapore"),
    )
    assert routed["isError"] is False
    assert routed["structuredContent"]["decision"]["label"] == "datetime"
    proxied = inspector(
        config,
        *("--method", "tools/call", "--tool-name", "time__convert_time"),
        *("--tool-arg", "source_timezone=UTC", "time=12:00", "target_timezone=Asia/Tokyo"),
    )
    assert proxied["isError"] is False
    assert proxied["structuredContent"]["target"]["datetime"].endswith("21:00:00+09:00")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_clients_are_told_when_an_upstream_tool_list_changes(
    tmp_path: Path, cli_env: dict[str, str], mode: str
) -> None:
    """tests/support/faulty_mcp_server.py's ``grow`` adds a tool and announces it: the hub
    hears it, and ``skillswitch mcp`` tells its own client (a notification on the 2025
    handshake, an event on a ``subscriptions/listen`` stream at 2026-07-28)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        config_text(tmp_path / "memory.jsonl")
        + f"    - name: faulty\n      command: ['{sys.executable}', '{FAULTY_SERVER}']\n"
    )
    server = StdioServerParameters(
        command=str(REPO / ".venv" / "bin" / "skillswitch"),
        args=["mcp"],
        env={**cli_env, "SKILLSWITCH_CONFIG": str(config)},
    )
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            changed.set()

    async with Client(server, mode=mode, message_handler=on_message, cache=None) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        before = {tool.name for tool in (await client.list_tools()).tools}
        if mode == "legacy":
            grown = await client.call_tool("faulty__grow", {})
            with anyio.fail_after(20):
                await changed.wait()
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                grown = await client.call_tool("faulty__grow", {})
                with anyio.fail_after(20):
                    await subscription.__anext__()
        after = {tool.name for tool in (await client.list_tools()).tools}
    assert after - before == {"faulty__" + text_of(grown).removeprefix("added ")}


async def test_a_failed_ask_names_each_experts_reason(cache_root: Path, tmp_path: Path) -> None:
    """It said only "no expert answered (1 sub-exception)"."""

    def oracle(messages: Sequence[Message]) -> str:
        raise ExpertDeclinedError("oracle", "no arithmetic in 'tell me a joke'")

    config = parse_config(config_text(tmp_path / "memory.jsonl"))
    switch = Switch.from_config(
        config, overrides={"oracle": FunctionExpert("oracle", oracle)}, cache_dir=cache_root
    )
    async with switch, Client(SkillSwitchMCPServer(switch)) as connected:
        failed = await connected.call_tool("ask", {"request": "tell me a joke"})
    assert failed.is_error
    assert "no expert answered: expert 'oracle': no arithmetic in 'tell me a joke'" in text_of(
        failed
    )
