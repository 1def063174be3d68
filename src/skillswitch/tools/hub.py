"""``ToolHub``: the upstream MCP servers of a config, their catalogue, and calls by public name.

The sessions live in one background thread with its own event loop, so they outlive any one
caller's loop (``Switch.run_sync`` makes a loop per call; a stdio server should not restart for
each). Async methods may be awaited from any asyncio loop; ``*_sync`` methods serve plain code.
Arguments are checked against the tool's input schema before anything is sent upstream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import difflib
import json
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import pydantic
from anyio.abc import TaskGroup

from skillswitch.exceptions import ToolServerError
from skillswitch.schemas import instance_problem
from skillswitch.tools.base import ToolResult
from skillswitch.tools.catalogue import Catalogue, CatalogueTool, ToolFilter
from skillswitch.tools.connection import ServerConnection, ServerSettings, describe_error

__all__ = ["HubServer", "ToolHub", "result_text"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RESULT_CHARS = 100_000
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HubServer:
    """One upstream server as the hub sees it: how to reach it and which tools it exposes."""

    settings: ServerSettings
    tool_filter: ToolFilter = field(default_factory=ToolFilter)
    skills: tuple[str, ...] = ()
    """Skills whose requests may use this server's tools (empty: every skill)."""

    @property
    def name(self) -> str:
        return self.settings.name


class ToolHub:
    """Connections to every upstream server and one catalogue of their tools.

    >>> hub = ToolHub([HubServer(ServerSettings("time", StdioServerParameters(
    ...     command="mcp-server-time")))])  # doctest: +SKIP
    >>> hub.call_sync("time__get_current_time", {"timezone": "Asia/Tokyo"}).text  # doctest: +SKIP
    """

    def __init__(self, servers: Sequence[HubServer]) -> None:
        names = [server.name for server in servers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"MCP server names must be unique; repeated: {repeated}")
        self.servers = {server.name: server for server in servers}
        self.catalogue = Catalogue()
        self._connections: dict[str, ServerConnection] = {}
        self._stale: set[str] = set(self.servers)
        self._listing: dict[str, anyio.Event] = {}
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._portal_context: contextlib.AbstractContextManager[Any] | None = None
        self._closing: anyio.Event | None = None
        self._served: anyio.Event | None = None
        self._group: TaskGroup | None = None
        self._loop_thread: int | None = None
        self._thread_lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.changes = 0
        """How many times a server announced (or a restart implied) a new tool list."""
        self._change_listeners: dict[object, Callable[[str], None]] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (idempotent; every other method does it on demand)."""
        self._ensure_portal()

    def close(self) -> None:
        """End every session (subprocesses exit) and stop the background loop."""
        with self._thread_lock:
            portal, context = self._portal, self._portal_context
            self._portal = self._portal_context = None
        if portal is None or context is None:
            return
        with contextlib.suppress(Exception):
            portal.call(self._shutdown)
        with contextlib.suppress(Exception):
            context.__exit__(None, None, None)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> ToolHub:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the async API (any asyncio loop) -----------------------------------------------------

    async def tools(self) -> list[CatalogueTool]:
        """The catalogue, re-listing servers that are new, restarted or announced a change.
        A server that cannot be reached is left out (``health`` says why)."""
        return await self._in_hub(self._refresh)

    async def call(
        self, public_name: str, arguments: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> ToolResult:
        """Call a tool by its public name; every failure becomes an ``is_error`` result."""
        raw = await self.call_raw(public_name, arguments, timeout_s=timeout_s)
        return raw if isinstance(raw, ToolResult) else result_text(raw)

    async def call_raw(
        self, public_name: str, arguments: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> Any:
        """The upstream ``CallToolResult``, or a ``ToolResult`` error when the call could not
        be made (unknown tool, arguments that fail the schema, server down, timeout)."""
        return await self._in_hub(self._call, public_name, dict(arguments), timeout_s)

    def known(self, public_name: str) -> CatalogueTool | None:
        """The catalogue's entry for a name as listed so far (no listing, no waiting)."""
        try:
            return self.catalogue.get(public_name)
        except LookupError:
            return None

    async def health(self) -> list[dict[str, Any]]:
        return await self._in_hub(self._health)

    async def restart(self, server: str) -> None:
        await self._in_hub(self._restart, server)

    def on_tools_changed(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(server)`` each time a server announces a new tool list (or a restart
        implies one); the catalogue lists that server again on its next use. Listeners run in
        the hub's own thread: they must return at once (hand work to another loop) and not
        raise. Returns the callable that removes the listener (idempotent).

        >>> stop = hub.on_tools_changed(lambda server: print(server, "changed"))  # doctest: +SKIP
        """
        token = object()  # the same callable may be added twice (bound methods compare equal)
        self._change_listeners[token] = listener

        def remove() -> None:
            self._change_listeners.pop(token, None)

        return remove

    def tools_sync(self) -> list[CatalogueTool]:
        return self._ensure_portal().call(self._refresh)

    def refresh_sync(self, servers: Sequence[str]) -> list[CatalogueTool]:
        """Start and list ``servers`` now (e.g. those configured to start eagerly)."""
        return self._ensure_portal().call(self._refresh, servers)

    def call_sync(
        self, public_name: str, arguments: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> ToolResult:
        raw = self._ensure_portal().call(self._call, public_name, dict(arguments), timeout_s)
        return raw if isinstance(raw, ToolResult) else result_text(raw)

    def health_sync(self) -> list[dict[str, Any]]:
        return self._ensure_portal().call(self._health)

    # --- inside the hub's loop ------------------------------------------------------------------

    async def _refresh(self, servers: Sequence[str] | None = None) -> list[CatalogueTool]:
        """List the stale servers (or ``servers``) again, except those waiting out a backoff
        after failing to start: they are tried again once it has passed."""
        pending = self._stale | set(self._listing)  # listing now: wait for that listing
        wanted = pending if servers is None else set(servers) & pending
        due = [name for name in wanted if self._connection(name).retry_in_s() == 0]
        if due:
            async with anyio.create_task_group() as group:
                for name in due:
                    group.start_soon(self._list_server, name)
        return list(self.catalogue)

    async def _list_server(self, name: str) -> None:
        if name in self._listing:  # someone is listing it already: wait for that
            await self._listing[name].wait()
            return
        done = self._listing[name] = anyio.Event()
        try:
            self._stale.discard(name)
            tools = await self._connection(name).list_tools()
            kept = self.catalogue.replace_server(name, tools, self.servers[name].tool_filter)
            logger.info("MCP server %r: %d tools (%d listed)", name, len(kept), len(tools))
        except Exception as exc:
            self._stale.add(name)
            logger.warning("MCP server %r left out of the catalogue: %s", name, describe_error(exc))
        finally:
            del self._listing[name]
            done.set()

    async def _call(
        self, public_name: str, arguments: dict[str, Any], timeout_s: float | None
    ) -> Any:
        if public_name not in self.catalogue:
            await self._refresh()  # a server not listed yet may have it
        try:
            tool = self.catalogue.get(public_name)
        except LookupError as exc:
            return ToolResult(
                f"{exc}{self._why_missing(public_name)}", is_error=True, unavailable=True
            )
        if tool.server in self._stale:  # it announced a change: the schema may be new
            await self._refresh([tool.server])
            try:
                tool = self.catalogue.get(public_name)
            except LookupError as exc:
                return ToolResult(
                    f"{exc} (the server no longer lists it)", is_error=True, unavailable=True
                )
        problem = (
            _unsendable(arguments)  # first: the other messages would quote such a value
            or "; ".join(unknown_arguments(tool.input_schema, arguments))
            or schema_problem(tool.input_schema, arguments)
        )
        if problem is not None:
            return ToolResult(f"invalid arguments for {public_name}: {problem}", is_error=True)
        try:
            return await self._connection(tool.server).call_tool(
                tool.name, arguments, timeout_s=timeout_s, safe_to_retry=tool.hints.safe_to_retry
            )
        except (ToolServerError, TimeoutError) as exc:
            return ToolResult(str(exc), is_error=True, unavailable=True)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'result'}: {e['msg']}" for e in exc.errors()[:3]
            )
            return ToolResult(
                f"{public_name}: the server's result is invalid ({problems})",
                is_error=True,
                unavailable=True,
            )
        except Exception as exc:  # an MCP error response: said, not raised
            return ToolResult(f"{public_name} failed: {describe_error(exc)}", is_error=True)

    def _why_missing(self, public_name: str) -> str:
        """Why the tools of the server a name points at are not listed, when that is known: a
        server that failed to start is no reason to call the tool unknown and stop there."""
        server = public_name.split("__", 1)[0]
        connection = self._connections.get(server)
        if connection is None or server not in self._stale or not connection.last_error:
            return ""
        return f" (MCP server {server!r} is not available: {connection.last_error})"

    async def _health(self) -> list[dict[str, Any]]:
        report: list[dict[str, Any]] = []
        for name, server in self.servers.items():
            connection = self._connections.get(name)
            entry: dict[str, Any] = (
                connection.health()
                if connection is not None
                else {"server": name, "transport": server.settings.transport, "state": "idle"}
            )
            entry["tools"] = sum(1 for t in self.catalogue if t.server == name)
            report.append(entry)
        return report

    async def _restart(self, server: str) -> None:
        await self._connection(server).restart()

    def _connection(self, name: str) -> ServerConnection:
        if name not in self.servers:
            raise ToolServerError(name, f"not configured; known: {sorted(self.servers)}")
        connection = self._connections.get(name)
        if connection is None:
            assert self._group is not None
            connection = self._connections[name] = ServerConnection(
                self.servers[name].settings, self._group, on_tools_changed=self._tools_changed
            )
        return connection

    def _tools_changed(self, server: str) -> None:
        self.changes += 1
        self._stale.add(server)
        for listener in list(self._change_listeners.values()):
            try:
                listener(server)
            except Exception:  # one listener's bug must not stop the others or the session
                logger.exception("a tools-changed listener failed (server %r)", server)

    async def _serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        self._closing, self._served = anyio.Event(), anyio.Event()
        self._loop_thread = threading.get_ident()
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                task_status.started()
                await self._closing.wait()
                with anyio.move_on_after(SHUTDOWN_TIMEOUT_S, shield=True):
                    async with anyio.create_task_group() as closing:
                        for connection in self._connections.values():
                            closing.start_soon(connection.close)
                group.cancel_scope.cancel()
        finally:
            self._group = None
            self._connections.clear()
            self._served.set()

    async def _shutdown(self) -> None:
        if self._closing is not None and self._served is not None:
            self._closing.set()
            await self._served.wait()

    # --- crossing between loops -----------------------------------------------------------------

    def _ensure_portal(self) -> anyio.from_thread.BlockingPortal:
        with self._thread_lock:
            if self._portal is None:
                context = anyio.from_thread.start_blocking_portal(name="skillswitch-mcp")
                portal = context.__enter__()
                portal.start_task(self._serve)
                self._portal, self._portal_context = portal, context
                if self._finalizer is None:
                    self._finalizer = weakref.finalize(self, _close_quietly, weakref.ref(self))
            return self._portal

    async def _in_hub(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        # the first call starts the hub's thread and loop from a worker thread, not this loop's
        portal = self._portal
        if portal is None:
            portal = await anyio.to_thread.run_sync(self._ensure_portal)
        if threading.get_ident() == self._loop_thread:
            return await function(*args)
        future = portal.start_task_soon(function, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # cancels the task in the hub's loop (and the upstream request)
            raise


def _close_quietly(reference: weakref.ref[ToolHub]) -> None:
    hub = reference()
    if hub is not None:
        hub.close()


def unknown_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """An "unknown argument" message for each argument the schema does not declare (with the
    closest declared name), unless the schema lets other properties in (``additionalProperties``
    true or a schema). A server built on the MCP SDK drops undeclared arguments without a word,
    so a misspelt option would be ignored and the call answered as if it were not sent."""
    properties = schema.get("properties")
    extra = schema.get("additionalProperties", False)
    if not isinstance(properties, Mapping) or (extra is not False and extra is not None):
        return []
    problems = []
    for key in arguments:
        if key not in properties:
            close = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown argument {key!r}{hint}")
    return problems


def schema_problem(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """Why ``arguments`` fail the JSON Schema, or ``None`` when they pass (or the schema is
    itself invalid: then the server is the judge)."""
    return instance_problem(schema, dict(arguments), root="(arguments)")


def _unsendable(value: Any, where: str = "") -> str | None:
    """Where ``value`` holds what JSON cannot carry: a text with a lone surrogate (an
    undecodable byte of a command line, a ``\\ud800`` escape; the SDK's failure to encode it
    ended the server's session), or NaN or an infinity (Python's JSON reads them; a server
    received null and answered with its validator's dump)."""
    if isinstance(value, float) and not math.isfinite(value):
        return (
            f"{where or '(arguments)'}: {value} is not a finite number (JSON has no NaN or "
            "Infinity); send a number"
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"{where or '(arguments)'}: text that is not valid UTF-8 (at character "
                f"{exc.start}); send UTF-8 text"
            )
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _unsendable(key, where) or _unsendable(item, f"{where}.{key}" if where else key)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _unsendable(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def result_text(result: Any) -> ToolResult:
    """An MCP ``CallToolResult`` as text a model can read (images and blobs described, not
    inlined; structured content as JSON when there is no text)."""
    parts: list[str] = []
    for item in result.content or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append(item.text)
        elif kind in ("image", "audio"):
            size = len(base64.b64decode(item.data, validate=False)) if item.data else 0
            parts.append(f"[{kind}: {item.mime_type}, {size} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource: {item.uri}{' ' + item.name if item.name else ''}]")
        elif kind == "resource":
            resource = item.resource
            text = getattr(resource, "text", None)
            parts.append(text if text is not None else f"[resource: {resource.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[... {len(text) - MAX_RESULT_CHARS} characters cut]"
    return ToolResult(text, is_error=bool(result.is_error))
