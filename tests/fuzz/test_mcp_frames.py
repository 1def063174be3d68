"""``skillswitch mcp`` over stdio against raw frames (tests/fuzz/mcp_frames.py): the frames that
went unanswered before (a client waited forever), then a few hundred fuzzed ones with a fixed
seed. ``make fuzz`` sends 10,000."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from pydantic import ValidationError

from skillswitch.server.mcp_stdio import rejection
from tests.fuzz.mcp_frames import BOUNDED_FRAMES, Frames, Server, expected, fuzz, running_server

pytestmark = pytest.mark.timeout(300)

REQUEST = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

# Each of these got no answer from the SDK's stdio transport (it drops what it cannot read).
UNANSWERED_BEFORE = {
    "params a list": b'{"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": [1]}',
    "jsonrpc not 2.0": b'{"jsonrpc": "1.0", "id": "b", "method": "ping"}',
    "no jsonrpc": b'{"id": "c", "method": "ping"}',
    "id a list": b'{"jsonrpc": "2.0", "id": [1], "method": "ping"}',
    "id null": b'{"jsonrpc": "2.0", "id": null, "method": "ping"}',
    "id a float": b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}',
    "method a number": b'{"jsonrpc": "2.0", "id": "d", "method": 5}',
    "a lone surrogate": b'{"jsonrpc": "2.0", "id": "e", "method": "tools/call", "params": '
    b'{"name": "route", "arguments": {"request": "\\ud800"}}}',
    "a raw CR as whitespace": b'{"jsonrpc": "2.0",\r"id": "g", "method": "ping"}',
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe{}",
    "a batch": b'[{"jsonrpc": "2.0", "id": "h", "method": "ping"}]',
    "a bare value": b"42",
    "nested 100000 deep": b'{"jsonrpc": "2.0", "id": "i", "method": "ping", "params": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
}
ANSWERED_ALREADY = {
    "NaN": b'{"jsonrpc": "2.0", "id": "f", "method": "tools/call", "params": '
    b'{"name": "builtin__calculator", "arguments": {"expression": NaN}}}',
    "a 5 MB route": json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "j",
            "method": "tools/call",
            "params": {"name": "route", "arguments": {"request": "a" * 5 * 2**20}},
        }
    ).encode(),
    "a calculator bomb": json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "k",
            "method": "tools/call",
            "params": {
                "name": "builtin__calculator",
                "arguments": {"expression": "(10**1000)**10000"},
            },
        }
    ).encode(),
    "wrong argument types": json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "l",
            "method": "tools/call",
            "params": {"name": "find_tools", "arguments": {"query": ["x"], "k": "many"}},
        }
    ).encode(),
    "a blank line": b"   ",
    "a notification with bad params": b'{"jsonrpc": "2.0", "method": "notifications/cancelled", '
    b'"params": 7}',
    "a response nobody asked for": b'{"jsonrpc": "2.0", "id": 99, "result": {}}',
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_root: Path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("mcp-fuzz")
    with running_server(folder, cache_root) as running:
        yield running
    log = (folder / "server.log").read_text("utf-8", "replace")
    assert "Traceback" not in log, log[-4000:]  # nothing failed unseen, shutdown included


def test_frames_the_sdk_dropped_are_answered(server: Server) -> None:
    frames = {**UNANSWERED_BEFORE, **ANSWERED_ALREADY}
    report = fuzz(server, iter(frames.items()), len(frames))
    assert report.failures == 0, report.summary()
    for name, raw in UNANSWERED_BEFORE.items():
        want = expected(raw)
        if want.kind == "answer" and name != "a raw CR as whitespace":
            answer = server.responses[json.dumps(want.id)]
            assert answer["error"]["code"] == types.INVALID_REQUEST, (name, answer)
    assert server.responses['"g"']["result"] == {}  # the ping, read whole
    route = server.responses['"j"']
    assert route["result"]["isError"] is False
    bomb = server.responses['"k"']["result"]
    assert bomb["isError"] is True
    assert "too large" in bomb["content"][0]["text"]


def test_fuzzed_frames_never_crash_hang_or_go_unanswered(server: Server) -> None:
    report = fuzz(server, iter(Frames(seed=20261123)), BOUNDED_FRAMES)
    print(f"\n{report.summary()}")
    assert report.frames == BOUNDED_FRAMES
    assert report.failures == 0, report.summary()


def rejected(line: str) -> types.JSONRPCError | None:
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        return rejection(line, exc)
    raise AssertionError(f"{line!r} is a valid JSON-RPC message")


def test_rejections_say_what_is_wrong() -> None:
    parse = rejected("{not json")
    assert parse is not None
    assert parse.id is None
    assert parse.error.code == types.PARSE_ERROR
    assert parse.error.message.startswith("Parse error: the line is not JSON (Invalid JSON")
    bad_params = rejected(json.dumps({**REQUEST, "params": [1]}))
    assert bad_params is not None
    assert bad_params.id == 1
    assert bad_params.error.code == types.INVALID_REQUEST
    assert bad_params.error.message == "Invalid request: params: Input should be an object"
    batch = rejected(json.dumps([REQUEST]))
    assert batch is not None
    assert "MCP has no batches" in batch.error.message
    assert rejected(json.dumps({"jsonrpc": "2.0", "method": "x", "params": 7})) is None
    assert rejected(json.dumps({"jsonrpc": "2.0", "id": 3, "error": 1})) is None
