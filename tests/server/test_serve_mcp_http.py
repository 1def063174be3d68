"""skillswitch serve's MCP endpoint: ``create_app(switch)`` on loopback with its lifespan on,
driven over streamable HTTP by the ``mcp`` client (both protocol eras) and by a client we did not
write, the MCP Inspector CLI.

The upstream MCP servers are real: ``mcp-server-time`` (PyPI, 2026-07-28) and
tests/support/faulty_mcp_server.py (2025 handshake), whose ``grow`` tool adds a tool and
announces it, so that the change has to travel upstream -> hub -> our server -> our client.
The one expert is the loopback upstream of tests/conftest.py (``echo`` answers
``echo: <last message>``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.mcp_http import INITIALIZE, MCP_HEADERS
from tests.support.mcp_peers import FAULTY_SERVER, NODE_PEERS, peer
from tests.support.servers import serve

pytestmark = pytest.mark.anyio

KEY = "sk-mcp-test-0123456789"
OWN_TOOLS = {"ask", "route", "list_skills", "find_tools"}


def config_text(upstream: str) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - {{name: generalist, base_url: '{upstream}', model: echo}}
tools:
  servers:
    - name: time
      command: ['{peer("mcp-server-time")}', --local-timezone, UTC]
    - name: faulty
      command: ['{sys.executable}', '{FAULTY_SERVER}']
"""
    )


def make_switch(upstream: str, cache_root: Path) -> Switch:
    return Switch.from_config(parse_config(config_text(upstream)), cache_dir=cache_root)


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    """The app with an API key (the switch is used by the server's thread only: the app's
    lifespan closes it)."""
    with serve(create_app(make_switch(upstream, cache_root), api_key=KEY), lifespan="on") as base:
        yield base


@pytest.fixture(scope="module")
def open_url(upstream: str, cache_root: Path) -> Iterator[str]:
    """The app without a key (loopback only, as ``serve`` allows)."""
    with serve(create_app(make_switch(upstream, cache_root)), lifespan="on") as base:
        yield base


@asynccontextmanager
async def connect(base: str, *, key: str | None = KEY, **options: Any) -> AsyncIterator[Client]:
    """The ``mcp`` client over streamable HTTP; the key goes in an httpx2 client's headers."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, cache=None, **options) as client:
            yield client


def text_of(result: Any) -> str:
    return str(result.content[0].text)


def unwrap(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


# --- the protocol, both eras ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_lists_its_tools_and_the_upstream_ones(url: str, mode: str) -> None:
    async with connect(url, mode=mode) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= OWN_TOOLS | {"time__get_current_time", "faulty__echo", "faulty__grow"}
    assert tools["route"].annotations is not None
    assert tools["route"].annotations.read_only_hint is True
    assert tools["ask"].output_schema is not None
    assert tools["time__get_current_time"].description.startswith("[time] ")


async def test_route_and_ask_answer_with_structured_content(url: str) -> None:
    async with connect(url) as client:
        routed = await client.call_tool("route", {"request": "convert 5 miles to km"})
        asked = await client.call_tool("ask", {"request": "who discovered penicillin?"})
        skills = await client.call_tool("list_skills", {})
    assert not routed.is_error
    assert routed.structured_content is not None
    assert routed.structured_content["decision"]["label"] == "unit_conversion"
    assert not asked.is_error
    assert asked.structured_content is not None
    assert asked.structured_content["answer"] == "echo: who discovered penicillin?"
    trace = asked.structured_content["trace"]
    assert trace["schema"] == "skillswitch.trace/1"
    assert [e["expert"] for e in trace["experts"]] == ["generalist"]
    assert skills.structured_content is not None
    assert {s["name"] for s in skills.structured_content["result"]} >= {"math", "translation"}


async def test_proxied_calls_and_find_tools(url: str) -> None:
    async with connect(url, mode="legacy") as client:
        now = await client.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
        echoed = await client.call_tool("faulty__echo", {"text": "over HTTP"})
        found = await client.call_tool("find_tools", {"query": "what time is it in Tokyo?"})
    assert not now.is_error
    assert now.structured_content is not None
    assert now.structured_content["timezone"] == "Asia/Tokyo"
    assert text_of(echoed) == "over HTTP"
    assert found.structured_content is not None
    assert found.structured_content["tools"][0]["name"].startswith("time__")


async def test_arguments_that_fail_the_schema_get_a_clear_error_result(url: str) -> None:
    async with connect(url) as client:
        proxied = await client.call_tool("time__get_current_time", {"timezone": 9})
        own = await client.call_tool("route", {"request": ["not", "text"]})
        missing = await client.call_tool("ask", {})
        empty = await client.call_tool("ask", {"request": "  "})
        unknown = await client.call_tool("time__get_curent_time", {})
    assert proxied.is_error
    assert "invalid arguments for time__get_current_time: timezone: 9 is not of type" in (
        text_of(proxied)
    )
    assert own.is_error
    assert "request" in text_of(own)
    assert missing.is_error
    assert "request" in text_of(missing).lower()
    assert empty.is_error
    assert "the request is empty" in text_of(empty)
    assert unknown.is_error
    assert "did you mean 'time__get_current_time'" in text_of(unknown)


# --- auth, host checks, the rest of the app ------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_without_the_key_the_client_is_told_why(url: str, mode: str) -> None:
    with pytest.raises(BaseException) as refused:  # noqa: PT011 (an ExceptionGroup or not)
        async with connect(url, key=None, mode=mode):
            pass
    error = unwrap(refused.value)
    assert isinstance(error, MCPError), repr(error)
    assert "no API key was sent" in str(error)
    with pytest.raises(BaseException) as wrong:  # noqa: PT011
        async with connect(url, key="sk-wrong", mode=mode):
            pass
    assert "the API key is not valid for this server" in str(unwrap(wrong.value))


def test_refusals_on_mcp_are_json_rpc_errors(url: str) -> None:
    refused = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    body = refused.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None
    assert body["error"]["code"] == -32600
    assert "Authorization: Bearer <key>" in body["error"]["message"]
    accepted = httpx.post(
        f"{url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.headers["mcp-session-id"]
    too_large = httpx.post(
        f"{url}/mcp",
        content=b" " * (4 * 2**20 + 1),
        headers={**MCP_HEADERS, "Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == -32600
    assert "this server takes at most 4194304 bytes" in too_large.json()["error"]["message"]


def test_with_a_key_any_host_is_served(url: str) -> None:
    """Behind a proxy the Host header is the proxy's name: the key is the check then."""
    answer = httpx.post(
        f"{url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {KEY}", "Host": "mcp.example.com"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_without_a_key_only_loopback_hosts_are_served(open_url: str) -> None:
    port = open_url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        answer = httpx.post(
            f"{open_url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": host}, timeout=30
        )
        assert answer.status_code == 200, (host, answer.text)
    rebound = httpx.post(
        f"{open_url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Host": f"attacker.example:{port}"},
        timeout=30,
    )
    assert rebound.status_code == 421
    foreign_page = httpx.post(
        f"{open_url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Origin": "http://attacker.example"},
        timeout=30,
    )
    assert foreign_page.status_code == 403


def test_chat_completions_and_metrics_on_the_same_app(url: str) -> None:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="skillswitch", messages=[{"role": "user", "content": "hello there"}]
        )
    assert answer.choices[0].message.content == "echo: hello there"

    def counted(status: str) -> float:
        response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200
        return sum(
            s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
            if s.name == "skillswitch_requests_total"
            and s.labels.get("endpoint") == "/mcp"
            and s.labels.get("status") == status
        )

    before_ok, before_refused = counted("200"), counted("401")
    httpx.post(f"{url}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    httpx.post(
        f"{url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert counted("401") == before_refused + 1
    assert counted("200") == before_ok + 1


def test_no_mcp_means_no_route(upstream: str, cache_root: Path) -> None:
    switch = Switch.from_config(
        parse_config(
            DEFAULT_SKILLS + f"experts:\n  - {{name: g, base_url: '{upstream}', model: echo}}\n"
        ),
        cache_dir=cache_root,
    )
    app = create_app(switch, mcp=False)
    assert app.state.mcp_server is None
    with serve(app, lifespan="on") as base:
        missing = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
        health = httpx.get(f"{base}/healthz", timeout=30)
    assert missing.status_code == 404
    assert health.status_code == 200


# --- the upstream catalogue changes --------------------------------------------------------


async def test_legacy_sessions_are_told_when_an_upstream_tool_list_changes(url: str) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            changed.set()

    async with connect(url, mode="legacy", message_handler=on_message) as client:
        before = {tool.name for tool in (await client.list_tools()).tools}
        grown = await client.call_tool("faulty__grow", {})
        assert not grown.is_error
        with anyio.fail_after(20):
            await changed.wait()
        after = {tool.name for tool in (await client.list_tools()).tools}
    added = after - before
    assert added == {"faulty__" + text_of(grown).removeprefix("added ")}


async def test_listening_clients_are_told_when_an_upstream_tool_list_changes(url: str) -> None:
    async with connect(url) as client:
        assert client.protocol_version == "2026-07-28"
        before = {tool.name for tool in (await client.list_tools()).tools}
        async with client.listen(tools_list_changed=True) as subscription:
            grown = await client.call_tool("faulty__grow", {})
            with anyio.fail_after(20):
                event = await subscription.__anext__()
        assert type(event).__name__ == "ToolsListChanged"
        after = {tool.name for tool in (await client.list_tools()).tools}
    assert after - before == {"faulty__" + text_of(grown).removeprefix("added ")}


# --- a client we did not write -------------------------------------------------------------


def inspector(base: str, *arguments: str) -> dict[str, Any]:
    node = NODE_PEERS / "mcp-inspector"
    if not node.exists():
        pytest.skip("the MCP Inspector is not installed; run `make mcp-peers`")
    command = [str(node), "--cli", f"{base}/mcp", "--transport", "http", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_mcp_inspector_drives_skillswitch_over_http(open_url: str) -> None:
    listed = inspector(open_url, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert OWN_TOOLS | {"time__convert_time", "faulty__echo"} <= names
    routed = inspector(
        open_url,
        *("--method", "tools/call", "--tool-name", "route"),
        *("--tool-arg", "request=what time is it in Singapore"),
    )
    assert routed["isError"] is False
    assert routed["structuredContent"]["decision"]["label"] == "datetime"
    proxied = inspector(
        open_url,
        *("--method", "tools/call", "--tool-name", "time__convert_time"),
        *("--tool-arg", "source_timezone=UTC", "time=12:00", "target_timezone=Asia/Tokyo"),
    )
    assert proxied["isError"] is False
    assert proxied["structuredContent"]["target"]["datetime"].endswith("21:00:00+09:00")


# --- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [None, "--no-mcp"])
def test_cli_serve_mounts_mcp_unless_told_not_to(
    flag: str | None, upstream: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(upstream), encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "skillswitch"), "serve", "--config", str(config)]
    command += ["--port", str(port), *([flag] if flag else [])]
    process = subprocess.Popen(
        command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "skillswitch serve did not start within 60 s"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    if flag is None:
        assert answer.status_code == 200, answer.text
        assert answer.headers["mcp-session-id"]
        assert f"MCP (streamable HTTP) on {base}/mcp" in stderr
    else:
        assert answer.status_code == 404
        assert "MCP over HTTP off (--no-mcp)" in stderr
