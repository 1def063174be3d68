"""The MCP client side against real servers: our builtin server in-process, third-party servers
from PyPI (2026-07-28 protocol) and npm (2025 handshake), and a server that misbehaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.server import MCPServer
from mcp_types import ToolAnnotations

from skillswitch.tools.catalogue import ToolFilter
from skillswitch.tools.connection import ServerSettings
from skillswitch.tools.hub import HubServer, ToolHub
from skillswitch.tools.sources import CatalogueTools, MCPTool, ToolPolicy, tool_policy
from tests.support.mcp_peers import children_running, faulty_server, stdio

pytestmark = pytest.mark.anyio


def counting_server() -> tuple[MCPServer, list[int]]:
    calls: list[int] = []
    server = MCPServer("counting")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append(a + b)
        return a + b

    return server, calls


@pytest.fixture
def hubs() -> Iterator[list[ToolHub]]:
    made: list[ToolHub] = []
    yield made
    for hub in made:
        hub.close()


def make_hub(hubs: list[ToolHub], *servers: HubServer) -> ToolHub:
    hub = ToolHub(list(servers))
    hubs.append(hub)
    return hub


def test_catalogue_names_every_tool_server__tool_and_calls_it(hubs: list[ToolHub]) -> None:
    server, calls = counting_server()
    hub = make_hub(hubs, HubServer(ServerSettings("math", server)))
    tools = hub.tools_sync()
    assert [t.public_name for t in tools] == ["math__add"]
    assert tools[0].spec.to_openai()["function"]["parameters"]["required"] == ["a", "b"]
    result = hub.call_sync("math__add", {"a": 2, "b": 40})
    assert (result.text, result.is_error) == ("42", False)
    assert calls == [42]


def test_arguments_failing_the_schema_never_reach_the_server(hubs: list[ToolHub]) -> None:
    server, calls = counting_server()
    hub = make_hub(hubs, HubServer(ServerSettings("math", server)))
    result = hub.call_sync("math__add", {"a": "two", "b": 3})
    assert result.is_error
    assert result.text == "invalid arguments for math__add: a: 'two' is not of type 'integer'"
    missing = hub.call_sync("math__add", {"a": 1})
    assert "'b' is a required property" in missing.text
    # The SDK's server would drop an undeclared argument and answer as if it were not sent.
    misspelt = hub.call_sync("math__add", {"a": 1, "b": 2, "bb": 3})
    assert misspelt.is_error
    assert (
        misspelt.text
        == "invalid arguments for math__add: unknown argument 'bb' (did you mean 'b'?)"
    )
    assert calls == []


def test_unknown_tool_names_the_closest_ones(hubs: list[ToolHub]) -> None:
    server, _ = counting_server()
    hub = make_hub(hubs, HubServer(ServerSettings("math", server)))
    result = hub.call_sync("math__ad", {"a": 1, "b": 2})
    assert result.is_error
    assert result.text == "unknown tool 'math__ad'; did you mean 'math__add'?"


def test_both_protocol_eras_and_allow_deny_filters(hubs: list[ToolHub]) -> None:
    hub = make_hub(
        hubs,
        HubServer(ServerSettings("time", stdio("mcp-server-time", "--local-timezone", "UTC"))),
        HubServer(
            ServerSettings("everything", stdio("mcp-server-everything", "stdio")),
            ToolFilter(allow=("echo", "get-*"), deny=("get-env",)),
        ),
    )
    names = {t.public_name for t in hub.tools_sync()}
    assert {"time__get_current_time", "time__convert_time", "everything__echo"} <= names
    assert "everything__get-env" not in names  # denied
    assert "everything__toggle-simulated-logging" not in names  # not allowed
    protocols = {h["server"]: h["protocol"] for h in hub.health_sync()}
    assert protocols == {"time": "2026-07-28", "everything": "2025-11-25"}
    now = json.loads(hub.call_sync("time__get_current_time", {"timezone": "Asia/Tokyo"}).text)
    assert now["timezone"] == "Asia/Tokyo"
    assert now["datetime"].endswith("+09:00")
    assert hub.call_sync("everything__echo", {"message": "hello"}).text == "Echo: hello"
    summed = hub.call_sync("everything__get-sum", {"a": 2, "b": 3})
    assert summed.text == "The sum of 2 and 3 is 5."
    wrong_zone = hub.call_sync("time__get_current_time", {"timezone": "Mars/Olympus"})
    assert wrong_zone.is_error
    assert "Mars/Olympus" in wrong_zone.text


def test_filesystem_and_git_servers(hubs: list[ToolHub], tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text("skillswitch was here\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README").write_text("hello\n")
    hub = make_hub(
        hubs,
        HubServer(ServerSettings("fs", stdio("mcp-server-filesystem", str(files)))),
        HubServer(ServerSettings("git", stdio("mcp-server-git", "--repository", str(repo)))),
    )
    text = hub.call_sync("fs__read_text_file", {"path": str(files / "notes.txt")})
    assert text.text == "skillswitch was here\n"
    outside = hub.call_sync("fs__read_text_file", {"path": "/etc/hostname"})
    assert outside.is_error
    assert "outside allowed directories" in outside.text.lower()
    status = hub.call_sync("git__git_status", {"repo_path": str(repo)})
    assert not status.is_error
    assert "README" in status.text


async def test_destructive_tools_need_the_skill_to_allow_them(
    hubs: list[ToolHub], tmp_path: Path
) -> None:
    memory = tmp_path / "memory.jsonl"
    hub = make_hub(
        hubs,
        HubServer(
            ServerSettings(
                "memory",
                stdio("mcp-server-memory", env={"MEMORY_FILE_PATH": str(memory)}),
            )
        ),
    )
    entries = {t.public_name: t for t in await hub.tools()}
    assert entries["memory__delete_entities"].hints.destructive
    assert not entries["memory__create_entities"].hints.destructive
    source = CatalogueTools(hub, ["memory__*"])
    with tool_policy(ToolPolicy(("notes",))):
        offered = {t.spec.name for t in await source.tools_for("forget about Ada")}
        assert "memory__delete_entities" not in offered
        assert "memory__read_graph" in offered
        direct = MCPTool(hub, entries["memory__delete_entities"])
        refused = await direct.call({"entityNames": ["Ada"]})
        assert refused.is_error
        assert "allow_destructive" in refused.text
    entity = {"name": "Ada", "entityType": "person", "observations": ["wrote programs"]}
    created = await hub.call("memory__create_entities", {"entities": [entity]})
    assert not created.is_error
    with tool_policy(ToolPolicy(("notes",), ("memory__delete_*",))):
        offered = {t.spec.name for t in await source.tools_for("forget about Ada")}
        assert "memory__delete_entities" in offered
        deleted = await MCPTool(hub, entries["memory__delete_entities"]).call(
            {"entityNames": ["Ada"]}
        )
    assert not deleted.is_error
    graph = await hub.call("memory__read_graph", {})
    assert "Ada" not in graph.text


async def test_servers_reserved_for_skills_are_offered_to_those_skills_only(
    hubs: list[ToolHub],
) -> None:
    server, _ = counting_server()
    hub = make_hub(hubs, HubServer(ServerSettings("math", server), skills=("math",)))
    source = CatalogueTools(hub, ["math__*"])
    with tool_policy(ToolPolicy(("writing",))):
        assert await source.tools_for("add 2 and 2") == []
    with tool_policy(ToolPolicy(("math", "writing"))):
        assert [t.spec.name for t in await source.tools_for("add 2 and 2")] == ["math__add"]


def test_a_killed_server_restarts_and_the_next_call_succeeds(hubs: list[ToolHub]) -> None:
    hub = make_hub(
        hubs, HubServer(ServerSettings("time", stdio("mcp-server-time", "--local-timezone", "UTC")))
    )
    assert not hub.call_sync("time__get_current_time", {"timezone": "UTC"}).is_error
    (pid,) = children_running("mcp-server-time")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while hub.health_sync()[0]["state"] == "ready" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hub.health_sync()[0]["state"] == "lost"
    result = hub.call_sync("time__get_current_time", {"timezone": "Europe/Paris"})
    assert not result.is_error
    assert "Europe/Paris" in result.text
    health = hub.health_sync()[0]
    assert (health["state"], health["starts"]) == ("ready", 2)
    assert children_running("mcp-server-time") != [pid]


def test_close_leaves_no_server_process(hubs: list[ToolHub]) -> None:
    hub = make_hub(
        hubs,
        HubServer(ServerSettings("time", stdio("mcp-server-time", "--local-timezone", "UTC"))),
        HubServer(ServerSettings("everything", stdio("mcp-server-everything", "stdio"))),
    )
    hub.tools_sync()
    assert children_running("mcp-server-time")
    assert children_running("server-everything")
    hub.close()
    assert children_running("mcp-server-time") == []
    assert children_running("server-everything") == []


def test_a_server_that_cannot_start_is_reported_and_the_others_work(
    hubs: list[ToolHub], tmp_path: Path
) -> None:
    from mcp import StdioServerParameters

    server, _ = counting_server()
    hub = make_hub(
        hubs,
        HubServer(ServerSettings("math", server)),
        HubServer(
            ServerSettings(
                "broken",
                StdioServerParameters(command="/bin/sh", args=["-c", "echo 'no such db' >&2"]),
                stderr_path=tmp_path / "broken.log",
                connect_timeout_s=5,
            )
        ),
    )
    assert [t.public_name for t in hub.tools_sync()] == ["math__add"]
    broken = next(h for h in hub.health_sync() if h["server"] == "broken")
    assert broken["state"] == "failed"
    assert "no such db" in broken["last_error"]
    assert broken["retry_in_s"] > 0  # backs off before trying again
    assert hub.call_sync("math__add", {"a": 1, "b": 1}).text == "2"
    assert hub.call_sync("broken__anything", {}).is_error


def test_faults_become_error_results_and_the_hub_stays_up(hubs: list[ToolHub]) -> None:
    hub = make_hub(
        hubs,
        HubServer(
            ServerSettings("faulty", faulty_server(), call_timeout_s=1.0, timeouts_before_restart=2)
        ),
    )
    assert hub.call_sync("faulty__echo", {"text": "hi"}).text == "hi"
    flood = hub.call_sync("faulty__flood", {})
    assert (flood.text, flood.is_error) == ("after the flood", False)
    invalid = hub.call_sync("faulty__wrong_shape", {})
    assert invalid.is_error
    assert "result is invalid" in invalid.text
    garbage = hub.call_sync("faulty__garbage", {})
    assert garbage.is_error
    assert "timed out after 1s" in garbage.text
    hung = hub.call_sync("faulty__hang", {})
    assert hung.is_error
    assert "timed out" in hung.text
    # two timeouts in a row: taken for hung and restarted on the next call
    assert hub.call_sync("faulty__echo", {"text": "again"}).text == "again"
    assert hub.health_sync()[0]["starts"] == 2
    crashed = hub.call_sync("faulty__crash", {})
    assert crashed.is_error
    assert "connection was lost" in crashed.text
    assert hub.call_sync("faulty__echo", {"text": "back"}).text == "back"


async def test_async_callers_from_their_own_loop(hubs: list[ToolHub]) -> None:
    import anyio

    server, calls = counting_server()
    hub = make_hub(hubs, HubServer(ServerSettings("math", server)))
    results: list[str] = []

    async def one(i: int) -> None:
        results.append((await hub.call("math__add", {"a": i, "b": 1})).text)

    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(one, i)
    assert sorted(results, key=int) == [str(i + 1) for i in range(20)]
    assert len(calls) == 20
