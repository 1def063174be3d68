"""The stdio transport of ``skillswitch mcp``: the SDK's, except that every line gets the answer
JSON-RPC 2.0 asks for.

The SDK (2.3) drops a line it cannot read as a JSON-RPC message with a DEBUG log record and
nothing on the wire. A request whose ``params`` is a list, whose ``jsonrpc`` is not "2.0", or
whose arguments hold a lone surrogate was never answered, and its client waited forever
(tests/fuzz/mcp_frames.py: 2,618 of 6,025 requests in 10,000 fuzzed frames); one whose id is
a list or a float was taken for a notification. Here such a line is
answered before the SDK sees it: -32700 (parse error, id null) when it is not JSON, -32600
(invalid request) otherwise, with the request's id when it has a valid one. Notifications and
responses are never answered, malformed or not; blank lines are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

__all__ = ["jsonrpc_error", "rejection", "serve_stdio", "valid_request_id"]

ReadStream = Any  # the SDK's context streams (mcp.shared._context_streams, private)
WriteStream = Any
Run = Callable[[ReadStream, WriteStream], Awaitable[None]]

_MAX_DETAIL = 200


async def serve_stdio(run: Run) -> None:
    """Serve ``run(read_stream, write_stream)`` (a server's connection) over stdin/stdout."""
    with _claimed_stdin() as wire:
        lines = _AnsweredLines(anyio.wrap_file(wire))
        stdin = cast("anyio.AsyncFile[str]", lines)  # the SDK only iterates its lines
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            lines.answer_into(write_stream)
            await run(read_stream, write_stream)


def rejection(line: str, problem: Exception) -> types.JSONRPCError | None:
    """The answer to a line the SDK cannot read (``problem``: why), or None for none."""
    if not line.strip():
        return None
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, nested too deeply, an int too long
        return jsonrpc_error(
            None, types.PARSE_ERROR, f"Parse error: the line is not JSON ({_why(problem)})"
        )
    if isinstance(frame, list):
        return jsonrpc_error(
            None,
            types.INVALID_REQUEST,
            "Invalid request: MCP has no batches; send one JSON-RPC message per line",
        )
    if not isinstance(frame, dict):
        kind = "null" if frame is None else type(frame).__name__
        return jsonrpc_error(
            None, types.INVALID_REQUEST, f"Invalid request: a message is a JSON object, not {kind}"
        )
    if "method" not in frame and ("result" in frame or "error" in frame):
        return None  # a response: never answered
    if "method" in frame and "id" not in frame:
        return None  # a notification: never answered, even a malformed one
    request_id = frame.get("id")
    return jsonrpc_error(
        request_id if valid_request_id(request_id) else None,
        types.INVALID_REQUEST,
        f"Invalid request: {_why(problem)}",
    )


def valid_request_id(value: object) -> bool:
    """A JSON-RPC request id MCP accepts: a string or an integer (not null, a float, a bool)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class _AnsweredLines:
    """stdin's lines for the SDK's reader, less those it could not read: those are answered
    here, on the SDK's own write stream (so answers never interleave on stdout)."""

    def __init__(self, source: anyio.AsyncFile[str]) -> None:
        self._source = source
        self._writer: WriteStream | None = None
        self._ready = anyio.Event()

    def answer_into(self, writer: WriteStream) -> None:
        self._writer = writer
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        await self._ready.wait()  # the write stream exists once the transport is entered
        async for line in self._source:
            try:
                message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except Exception as exc:  # whatever makes the SDK drop the line
                reply = rejection(line, exc)
            else:
                if not _has_bad_id(message, line):
                    yield line
                    continue
                # The SDK reads {"id": [1], "method": ...} as a notification: it would never
                # answer a client that waits for a response.
                reply = jsonrpc_error(
                    None,
                    types.INVALID_REQUEST,
                    "Invalid request: id must be a string or an integer (a notification has none)",
                )
            if reply is not None and self._writer is not None:
                await self._writer.send(SessionMessage(reply))


@contextmanager
def _claimed_stdin() -> Iterator[IO[str]]:
    """The client's pipe on a private descriptor, and fd 0 on the null device while serving, as
    the SDK does for the stdin it opens itself: handlers and children never read the wire."""
    saved = os.dup(0)
    wire = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        # Lines end at "\n" only: the SDK's reader also split at a lone "\r", which JSON allows as
        # whitespace, cutting a valid request in two.
        with open(wire, encoding="utf-8", errors="replace", newline="\n") as text:
            yield text
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def _has_bad_id(message: types.JSONRPCMessage, line: str) -> bool:
    """A request whose id is not a string or an integer, read by the SDK as a notification."""
    if not isinstance(message, types.JSONRPCNotification) or '"id"' not in line:
        return False
    frame = json.loads(line)  # parses: pydantic just did (its JSON is no laxer than Python's)
    return isinstance(frame, dict) and "id" in frame


def jsonrpc_error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)
    )


def _why(problem: Exception) -> str:
    """What is wrong, from the request's point of view (the SDK tries each message type)."""
    if not isinstance(problem, ValidationError):
        return str(problem)[:_MAX_DETAIL]
    errors = problem.errors(include_url=False)
    as_request = [e for e in errors if e["loc"] and e["loc"][0] == "JSONRPCRequest"]
    shown = []
    for error in (as_request or errors)[:2]:
        where = ".".join(str(part) for part in error["loc"][1:])
        shown.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    text = "; ".join(shown)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
