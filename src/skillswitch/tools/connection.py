"""One long-lived session with one upstream MCP server: started on first use (or at start-up),
watched, and restarted with exponential backoff when it dies.

The ``mcp`` ``Client`` is an async context manager that must be entered and left by the same
task, so each session lives in an *owner* task of the task group given to the connection; calls
from other tasks share it. A watcher on the transport's read stream notices at once when a stdio
server exits or an HTTP stream ends, so the next call restarts the server instead of failing.
A server that hangs is caught by the per-call timeout; several timeouts in a row restart it.

Every method must run in the event loop that owns the task group (``ToolHub`` sees to that).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from mcp import Client, StdioServerParameters
from mcp.server import MCPServer

from skillswitch.exceptions import ToolServerError

__all__ = ["ConnectionState", "ServerConnection", "ServerSettings", "describe_error"]

logger = logging.getLogger(__name__)

ConnectionState = Literal["idle", "starting", "ready", "lost", "failed", "closed"]
Target = MCPServer | StdioServerParameters | str
"""An in-process server (tests), a command to run over stdio, or a streamable-HTTP URL."""

# JSON-RPC codes the SDK raises as MCPError (mcp_types): the transport closed; a read timed out.
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001


@dataclass(frozen=True)
class ServerSettings:
    """How to reach one upstream server and how patient to be with it."""

    name: str
    target: Target
    headers: Mapping[str, str] = field(default_factory=dict)
    """HTTP headers for a URL target (e.g. ``Authorization: Bearer ...``)."""
    mode: Literal["auto", "legacy"] = "auto"
    """``auto``: the 2026-07-28 protocol with a fallback to the 2025 handshake."""
    connect_timeout_s: float = 30.0
    call_timeout_s: float = 60.0
    restart_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeouts_before_restart: int = 3
    """Consecutive call timeouts after which a server is taken for hung and restarted."""
    stderr_path: Path | None = None
    """Where a stdio server's stderr goes (its tail is quoted when it fails to start)."""

    @property
    def transport(self) -> str:
        if isinstance(self.target, str):
            return "http"
        return "stdio" if isinstance(self.target, StdioServerParameters) else "in-process"


class ServerConnection:
    """The session with one server. ``call_tool``/``list_tools`` start it when needed."""

    def __init__(
        self,
        settings: ServerSettings,
        task_group: TaskGroup,
        *,
        on_tools_changed: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._task_group = task_group
        self._on_tools_changed = on_tools_changed
        self._client: Client | None = None
        self._lost = anyio.Event()
        self._stop = anyio.Event()
        self._owner_done = anyio.Event()
        self._owner_done.set()
        self._lock = anyio.Lock()
        self._state: ConnectionState = "idle"
        self._failures = 0
        self._next_attempt = 0.0
        self._consecutive_timeouts = 0
        self.starts = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def state(self) -> ConnectionState:
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until a failed server may be started again (0: now)."""
        return max(0.0, self._next_attempt - time.monotonic()) if self._failures else 0.0

    def health(self) -> dict[str, Any]:
        """A snapshot for ``skillswitch tools servers`` and health endpoints."""
        retry_in = self.retry_in_s()
        return {
            "server": self.name,
            "transport": self.settings.transport,
            "state": self._state,
            "starts": self.starts,
            "protocol": None if self._client is None else self._client.protocol_version,
            "last_error": self.last_error,
            "retry_in_s": round(retry_in, 3),
        }

    async def client(self) -> Client:
        """The live session, started (or restarted) if there is none."""
        client = self._client
        if client is not None and not self._lost.is_set():
            return client
        async with self._lock:
            client = self._client
            if client is not None and not self._lost.is_set():
                return client
            if self._state == "closed":
                raise ToolServerError(self.name, "the connection is closed")
            await self._end_owner()
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                if wait > self.settings.connect_timeout_s:
                    raise ToolServerError(
                        self.name,
                        f"failed to start {self._failures} times (last: {self.last_error}); "
                        f"next attempt in {wait:.1f}s",
                    )
                await anyio.sleep(wait)
            return await self._start()

    async def list_tools(self) -> list[Any]:
        """Every tool the server lists (all pages)."""
        client = await self.client()
        tools: list[Any] = []
        cursor: str | None = None
        with anyio.fail_after(self.settings.call_timeout_s):
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
        safe_to_retry: bool = False,
    ) -> Any:
        """``tools/call`` on the live session. A call that finds the server gone restarts it
        first; one lost in flight is repeated only when ``safe_to_retry`` (read-only or
        idempotent). Raises ``ToolServerError`` for an unreachable server and ``TimeoutError``."""
        from mcp.shared.exceptions import MCPError

        timeout = self.settings.call_timeout_s if timeout_s is None else timeout_s
        for attempt in (1, 2):
            client = await self.client()
            try:
                result = await client.call_tool(name, dict(arguments), read_timeout_seconds=timeout)
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    await self._timed_out()
                    raise TimeoutError(
                        f"{self.name}: {name} timed out after {timeout:g}s"
                    ) from None
                if exc.code != CONNECTION_CLOSED:
                    raise
                self._lost.set()
                if attempt == 2 or not safe_to_retry:
                    raise ToolServerError(
                        self.name,
                        f"the connection was lost during the call to {name}; it restarts on the "
                        "next call"
                        + (
                            ""
                            if safe_to_retry
                            else " (not repeated: the tool may have side effects)"
                        ),
                    ) from None
                logger.warning(
                    "MCP server %r: connection lost; restarting and repeating %s", self.name, name
                )
                continue
            self._consecutive_timeouts = 0
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def restart(self) -> None:
        """Stop the session now; the next call starts a fresh one."""
        async with self._lock:
            await self._end_owner()

    async def close(self) -> None:
        """Stop the session for good (the subprocess, if any, is ended)."""
        async with self._lock:
            self._state = "closed"
            await self._end_owner()
            self._state = "closed"

    # --- the owner task -----------------------------------------------------------------------

    async def _start(self) -> Client:
        self._state = "starting"
        self._stop = anyio.Event()
        self._lost = anyio.Event()
        self._owner_done = anyio.Event()
        started = _Started()
        scope = anyio.CancelScope()
        self._owner_scope = scope
        self._task_group.start_soon(self._own, started, scope, name=f"mcp:{self.name}")
        with anyio.move_on_after(self.settings.connect_timeout_s):
            await started.event.wait()
        if not started.event.is_set():
            scope.cancel()
            await self._owner_done.wait()
            self._failed(
                f"did not start within {self.settings.connect_timeout_s:g}s{self._stderr_tail()}"
            )
        elif started.error is not None:
            await self._owner_done.wait()
            self._failed(f"failed to start: {describe_error(started.error)}{self._stderr_tail()}")
        assert started.client is not None
        self._failures = 0
        self._consecutive_timeouts = 0
        self._next_attempt = 0.0
        self.starts += 1
        self._client = started.client
        self._state = "ready"
        self.last_error = None
        logger.info(
            "MCP server %r ready (%s, protocol %s)",
            self.name,
            self.settings.transport,
            started.client.protocol_version,
        )
        if self.starts > 1 and self._on_tools_changed is not None:
            self._on_tools_changed(self.name)  # a restarted server may list other tools
        return started.client

    async def _own(self, started: _Started, scope: anyio.CancelScope) -> None:
        try:
            with scope:
                async with contextlib.AsyncExitStack() as stack:
                    errlog = self._open_errlog(stack)
                    client = Client(
                        self._transport(errlog),
                        mode=self.settings.mode,
                        message_handler=self._on_message,
                        client_info=_client_info(),
                    )
                    await stack.enter_async_context(client)
                    started.succeed(client)
                    async with anyio.create_task_group() as watchers:
                        if _lists_change(client):
                            watchers.start_soon(self._listen_for_changes, client)
                        await _first(self._stop.wait, self._lost.wait)
                        watchers.cancel_scope.cancel()
        except Exception as exc:  # the caller of _start reports it; the session is over
            if not started.event.is_set():
                started.fail(exc)
            else:
                self.last_error = describe_error(exc)
                logger.warning("MCP server %r: session ended: %s", self.name, self.last_error)
        finally:
            if self._client is not None and not self._stop.is_set() and self._state != "closed":
                self._state = "lost"
                logger.warning(
                    "MCP server %r: connection lost; it restarts on the next call", self.name
                )
            self._client = None
            self._lost.set()
            self._owner_done.set()

    async def _end_owner(self) -> None:
        self._stop.set()
        with anyio.CancelScope(shield=True):
            await self._owner_done.wait()
        if self._state != "closed":
            self._state = "idle"

    def _failed(self, message: str) -> None:
        self._failures += 1
        delay = min(
            self.settings.restart_backoff_s * 2 ** (self._failures - 1), self.settings.max_backoff_s
        )
        self._next_attempt = time.monotonic() + delay
        self._state = "failed"
        self.last_error = message
        raise ToolServerError(self.name, message)

    async def _timed_out(self) -> None:
        self._consecutive_timeouts += 1
        if self._consecutive_timeouts >= self.settings.timeouts_before_restart:
            logger.warning(
                "MCP server %r: %d calls in a row timed out; restarting it",
                self.name,
                self._consecutive_timeouts,
            )
            self._consecutive_timeouts = 0
            self._lost.set()

    def _transport(self, errlog: TextIO | None) -> Any:
        target = self.settings.target
        if isinstance(target, MCPServer):
            return target
        if isinstance(target, StdioServerParameters):
            from mcp.client.stdio import stdio_client

            assert errlog is not None
            return _watched(stdio_client(target, errlog=errlog), self._lost)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(
            headers=dict(self.settings.headers),
            timeout=httpx2.Timeout(
                self.settings.call_timeout_s, connect=self.settings.connect_timeout_s
            ),
        )
        return _watched(
            _closing(http, streamable_http_client(target, http_client=http)), self._lost
        )

    def _open_errlog(self, stack: contextlib.AsyncExitStack) -> TextIO | None:
        """A stdio server's stderr: the configured log file, else nowhere."""
        if not isinstance(self.settings.target, StdioServerParameters):
            return None
        path = self.settings.stderr_path
        if path is None:
            return stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return stack.enter_context(path.open("a", encoding="utf-8"))

    def _stderr_tail(self, lines: int = 5) -> str:
        path = self.settings.stderr_path
        if path is None or not path.is_file():
            return ""
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
        return f"; its stderr ({path}) ends: " + " | ".join(tail) if tail else ""

    async def _on_message(self, message: Any) -> None:
        import mcp_types

        if isinstance(message, mcp_types.ToolListChangedNotification):
            logger.info("MCP server %r: tool list changed", self.name)
            if self._on_tools_changed is not None:
                self._on_tools_changed(self.name)
        elif isinstance(message, Exception):
            logger.warning(
                "MCP server %r sent something unreadable: %s", self.name, describe_error(message)
            )
        await anyio.lowlevel.checkpoint()

    async def _listen_for_changes(self, client: Client) -> None:
        """2026-07-28 servers announce changes on a ``subscriptions/listen`` stream."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    if self._on_tools_changed is not None:
                        self._on_tools_changed(self.name)
        except Exception as exc:  # no subscription: the catalogue is refreshed on restart only
            logger.debug(
                "MCP server %r: no change subscription (%s)", self.name, describe_error(exc)
            )


class _Started:
    def __init__(self) -> None:
        self.event = anyio.Event()
        self.client: Client | None = None
        self.error: BaseException | None = None

    def succeed(self, client: Client) -> None:
        self.client = client
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()


def describe_error(error: BaseException) -> str:
    """The innermost useful message of an error, unwrapping anyio's exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in error.exceptions)
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _lists_change(client: Client) -> bool:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    tools = client.server_capabilities.tools
    return (
        bool(tools and tools.list_changed) and client.protocol_version in MODERN_PROTOCOL_VERSIONS
    )


def _client_info() -> Any:
    from importlib.metadata import version

    from mcp_types import Implementation

    return Implementation(name="skillswitch", version=version("skillswitch"))


async def _first(*waits: Callable[[], Any]) -> None:
    """Return when the first of ``waits`` returns."""
    async with anyio.create_task_group() as group:

        async def run(wait: Callable[[], Any]) -> None:
            await wait()
            group.cancel_scope.cancel()

        for wait in waits:
            group.start_soon(run, wait)


@contextlib.asynccontextmanager
async def _watched(transport: Any, lost: anyio.Event) -> AsyncIterator[Any]:
    """The transport's streams, with ``lost`` set when the read side ends."""
    async with transport as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, lost), write_stream
    lost.set()


@contextlib.asynccontextmanager
async def _closing(http: Any, transport: Any) -> AsyncIterator[Any]:
    async with http, transport as streams:
        yield streams


class _WatchedReadStream:
    """A read stream that sets ``lost`` when it ends (the server exited or hung up)."""

    def __init__(self, inner: Any, lost: anyio.Event) -> None:
        self._inner = inner
        self._lost = lost

    def __getattr__(self, name: str) -> Any:  # e.g. ``last_context``
        return getattr(self._inner, name)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._lost.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
