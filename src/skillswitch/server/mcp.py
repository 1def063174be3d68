"""skillswitch as an MCP server: ``ask`` (a full run: the answer and its trace as structured
content), ``route`` (the decision alone), ``list_skills``, ``find_tools`` (retrieval over the
upstream catalogue), and every upstream tool proxied under its ``server__tool`` name.

Both protocol eras are served (``MCPServer`` answers the 2026-07-28 probe and the 2025
handshake). Proxied calls are schema-checked before they leave; upstream failures come back as
``is_error`` results, never as a crash of this server. Destructive upstream tools are not
proxied unless ``tools.proxy_allow_destructive`` names them.

When an upstream server's tool list changes (it said so, or it was restarted), connected clients
are told: ``notifications/tools/list_changed`` on 2025-handshake connections (stdio, or the
standalone GET stream of a streamable HTTP session), a ``ToolsListChanged`` event on
2026-07-28 ``subscriptions/listen`` streams.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio.to_thread
from anyio.from_thread import BlockingPortal
from mcp.server import MCPServer
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import ToolsListChanged
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as WireTool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from skillswitch.agents.sampling import (
    MAX_STOP_SEQUENCES,
    MAX_TOKENS,
    SEED_RANGE,
    parse_sampling,
)
from skillswitch.exceptions import SkillSwitchError
from skillswitch.redaction import redact
from skillswitch.server.mcp_stdio import serve_stdio
from skillswitch.tools.base import ToolResult
from skillswitch.tools.catalogue import CatalogueTool
from skillswitch.tools.hub import schema_problem, unknown_arguments

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["SkillSwitchMCPServer"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_SERVING = "skillswitch.serving"  # the lifespan state's key for the _Serving of a connection
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


class AskResult(BaseModel):
    answer: str = Field(description="The answer.")
    trace: dict[str, Any] = Field(
        description="How it was made (schema skillswitch.trace/1): skills, experts, tools, cost."
    )


class RouteResult(BaseModel):
    decision: dict[str, Any] = Field(description="Skills and scores, or out of scope.")


class SkillInfo(BaseModel):
    name: str
    description: str
    experts: list[str] = Field(description="Experts that serve it.")


class FoundTool(BaseModel):
    name: str = Field(description="Callable on this server under this name.")
    server: str
    description: str
    score: float


class FoundTools(BaseModel):
    tools: list[FoundTool]
    no_tool_applies: bool = Field(description="True when nothing in the catalogue fits.")


class SkillSwitchMCPServer(MCPServer):
    """The MCP face of a ``Switch``.

    >>> server = SkillSwitchMCPServer(Switch.from_config(None))  # doctest: +SKIP
    >>> server.run()  # stdio  # doctest: +SKIP
    """

    def __init__(
        self,
        switch: Switch,
        *,
        proxy_allow_destructive: Sequence[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(
            "skillswitch",
            instructions=(
                "Routes requests by skill to specialist experts and tools. `ask` answers a "
                "request (with a trace of how); `route` shows where it would go; `find_tools` "
                "searches the upstream tools, which are callable here as server__tool."
            ),
            lifespan=self._serving,
            **options,
        )
        self.switch = switch
        self.proxy_allow_destructive = tuple(proxy_allow_destructive)
        self._servings: list[_Serving] = []
        self.middleware.append(self._track_change_listeners)
        self._register()

    async def run_stdio_async(self) -> None:
        """stdio, every line answered as JSON-RPC asks (the SDK drops those it cannot read:
        see skillswitch.server.mcp_stdio)."""
        lowlevel = self._lowlevel_server
        options = lowlevel.create_initialization_options()
        await serve_stdio(lambda read, write: lowlevel.run(read, write, options))

    # --- proxying -------------------------------------------------------------------------------

    async def list_tools(self) -> list[WireTool]:
        own = await super().list_tools()
        return own + [_wire(entry) for entry in await self._proxied()]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        own = self._tool_manager.get_tool(name)
        if own is not None:
            _check_own_arguments(name, own.parameters, arguments)
            return await super().call_tool(name, arguments, context)
        hub = self.switch.hub
        if hub is None:
            raise ToolError(_unknown_tool(name, [t.name for t in self._tool_manager.list_tools()]))
        entry = hub.known(name)
        if entry is None:
            # Not listed so far: list the upstream servers, then say what is callable (a name of
            # a configured server goes on: the hub says what is wrong, e.g. it did not start).
            callable_names = [t.name for t in self._tool_manager.list_tools()]
            callable_names += [e.public_name for e in await self._proxied()]
            entry = hub.known(name)
            upstream = name.split("__", 1)[0] in hub.servers
            if entry is None and not upstream and name not in callable_names:
                raise ToolError(_unknown_tool(name, callable_names))
        if entry is not None and not self._proxy_allows(entry):
            return _error(
                f"{name} declares destructive effects and is not proxied; allow it with "
                "tools.proxy_allow_destructive in the config"
            )
        raw = await hub.call_raw(name, arguments)
        if isinstance(raw, ToolResult):
            return _error(raw.text) if raw.is_error else _text(raw.text)
        return CallToolResult(
            content=raw.content, structured_content=raw.structured_content, is_error=raw.is_error
        )

    async def _proxied(self) -> list[CatalogueTool]:
        hub = self.switch.hub
        return [] if hub is None else self._proxiable(await hub.tools())

    def _proxiable(self, catalogue: Sequence[CatalogueTool]) -> list[CatalogueTool]:
        own = {tool.name for tool in self._tool_manager.list_tools()}
        return [
            entry
            for entry in catalogue
            if self._proxy_allows(entry) and entry.public_name not in own
        ]

    def _proxy_allows(self, entry: CatalogueTool) -> bool:
        return not entry.hints.destructive or any(
            fnmatch.fnmatchcase(entry.public_name, p) for p in self.proxy_allow_destructive
        )

    # --- telling clients that the upstream catalogue changed ------------------------------------

    @asynccontextmanager
    async def _serving(self, _: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        """One serving of this server (a stdio connection, an in-process client, the HTTP
        session manager): while it runs, the hub's change signals reach its event loop."""
        hub = self.switch.hub
        if hub is None:
            yield {}
            return
        async with BlockingPortal() as portal:
            serving = _Serving(portal, self._announce)
            self._servings.append(serving)
            remove = hub.on_tools_changed(serving.changed)
            try:
                yield {_SERVING: serving}
            finally:
                remove()
                self._servings.remove(serving)
                await portal.stop(cancel_remaining=True)

    async def _announce(self, serving: _Serving) -> None:
        # One event on the bus reaches every listen stream: the first serving publishes it (two
        # servings at once happen only with several in-process clients, all in one loop).
        if self._servings and self._servings[0] is serving:
            await self._subscriptions.publish(ToolsListChanged())
        for connection in list(serving.legacy):
            await connection.send_tool_list_changed()  # best effort: never raises

    async def _track_change_listeners(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Advertise ``tools.listChanged`` in the 2025 handshake, and keep the connections
        that completed it, to notify them (2026-07-28 clients subscribe instead)."""
        result = await call_next(ctx)
        serving = (ctx.lifespan_context or {}).get(_SERVING)
        if not isinstance(serving, _Serving):
            return result
        if ctx.method == "initialize" and isinstance(result, dict):
            tools = result.get("capabilities", {}).get("tools")
            if isinstance(tools, dict):
                tools["listChanged"] = True
        elif ctx.method == "notifications/initialized":
            # The SDK (2.3) gives middleware no public handle on the connection; its session
            # holds it. Without one, this client is not told of changes (it can still re-list).
            connection = getattr(ctx.session, "_connection", None)
            if (
                isinstance(connection, Connection)
                and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS
                and connection not in serving.legacy
            ):
                serving.legacy.add(connection)
                connection.exit_stack.callback(serving.legacy.discard, connection)
        return result

    # --- skillswitch's own tools ------------------------------------------------------------------

    def _tool(self, annotations: ToolAnnotations) -> Callable[[F], F]:
        """Register a function as a tool, its docstring (dedented) as the description."""

        def register(function: F) -> F:
            description = inspect.cleandoc(function.__doc__ or function.__name__)
            self.add_tool(function, description=description, annotations=annotations)
            return function

        return register

    def _register(self) -> None:
        switch = self.switch

        @self._tool(ToolAnnotations(read_only_hint=True, open_world_hint=True))
        async def ask(
            request: str,
            temperature: Annotated[float | None, Field(ge=0, le=2)] = None,
            top_p: Annotated[float | None, Field(gt=0, le=1)] = None,
            max_tokens: Annotated[int | None, Field(ge=1, le=MAX_TOKENS)] = None,
            seed: Annotated[int | None, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])] = None,
            stop: Annotated[str, Field(min_length=1)]
            | Annotated[
                list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOP_SEQUENCES)
            ]
            | None = None,
            response_format: dict[str, Any] | None = None,
        ) -> AskResult:
            """Answer a request: skillswitch routes it by skill to the best experts and tools,
            combines their answers, and returns the answer with a trace of how it was made.
            The optional sampling settings (OpenAI's meanings) apply to every model that
            answers, the experts and the aggregator, over each expert's own.
            response_format (OpenAI's {"type": "json_object"} or {"type": "json_schema",
            "json_schema": {"name": ..., "schema": ...}}) makes the answer that JSON, or an
            error saying why it cannot be."""
            asked = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
            more = {"seed": seed, "stop": stop, "response_format": response_format}
            try:
                sampling = parse_sampling({**asked, **more})  # None: unset
                answer = await switch.run(_nonempty(request), sampling=sampling)
            except SkillSwitchError as exc:
                raise ToolError(str(exc)) from None
            return AskResult(answer=answer.text, trace=answer.trace.to_dict())

        @self._tool(READ_ONLY)
        async def route(request: str) -> RouteResult:
            """Where a request would go: its skills and their scores, or out of scope. Calls no
            expert."""
            try:
                decision = switch.route(_nonempty(request))
            except SkillSwitchError as exc:
                raise ToolError(str(exc)) from None
            return RouteResult(decision=decision.to_dict())

        @self._tool(READ_ONLY)
        def list_skills() -> list[SkillInfo]:
            """The skills requests are routed to, with the experts serving each."""
            return [
                SkillInfo(
                    name=skill,
                    description=switch.skill_descriptions.get(skill, ""),
                    experts=switch.experts_for(skill),
                )
                for skill in switch.router.skills
            ]

        @self._tool(READ_ONLY)
        async def find_tools(query: str, k: int = 8) -> FoundTools:
            """The upstream tools most relevant to a request (lexical + semantic search over
            names, descriptions and parameters), callable here by the names returned."""
            if not 1 <= k <= 50:
                raise ToolError(f"k must be between 1 and 50, got {k}")
            _nonempty(query, "query")
            finder, hub = switch.tool_finder, switch.hub
            catalogue = [] if hub is None else await hub.tools()
            entries = self._proxiable(catalogue)
            if not entries or finder is None:
                return FoundTools(tools=[], no_tool_applies=True)
            ranked, applies = await anyio.to_thread.run_sync(
                lambda: finder.search(query, catalogue, k, within=entries)
            )
            return FoundTools(
                tools=[
                    FoundTool(
                        name=entry.public_name,
                        server=entry.server,
                        description=entry.description,
                        score=round(score, 4),
                    )
                    for entry, score in ranked
                ],
                no_tool_applies=not applies,
            )


class _Serving:
    """Hands the hub's change signals (from the hub's thread) to one serving's event loop, at
    most one announcement in flight: a flood of upstream notifications becomes a few."""

    def __init__(self, portal: BlockingPortal, announce: Callable[[_Serving], Any]) -> None:
        self.legacy: set[Connection] = set()
        """2025-handshake connections of this serving, told with a notification."""
        self._portal = portal
        self._announce = announce
        self._lock = threading.Lock()
        self._due = False
        self._running = False

    def changed(self, server: str) -> None:
        """In the hub's thread: schedule an announcement, unless one is about to be made.

        Returns at once. Handing a task to the serving's loop waits until that loop takes it,
        and that loop may be waiting on the hub's thread itself (handing it a tool call): the
        hand-over runs in a thread of its own, or each loop would wait for the other for ever.
        """
        with self._lock:
            self._due = True
            if self._running:
                return
            self._running = True
        hand_over = threading.Thread(target=self._hand_over, name="skillswitch-mcp-announce")
        hand_over.daemon = True
        hand_over.start()

    def _hand_over(self) -> None:
        try:
            self._portal.start_task_soon(self._run)
        except RuntimeError:  # the serving is ending: nobody is left to tell
            with self._lock:
                self._running = False

    async def _run(self) -> None:
        while True:
            with self._lock:  # the check and the reset at once, or a change could be missed
                if not self._due:
                    self._running = False
                    return
                self._due = False
            try:
                await self._announce(self)
            except Exception:  # telling clients is advisory: the next change tries again
                logger.exception("could not tell MCP clients that the tool list changed")


def _nonempty(text: str, argument: str = "request") -> str:
    if not text.strip():
        raise ToolError(
            f"the {argument} is empty; send the text to "
            + ("search the tools for" if argument == "query" else "route or answer")
        )
    return text


def _unknown_tool(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"unknown tool {name!r}; did you mean {', '.join(map(repr, close))}?"
    shown = ", ".join(names[:20]) + (f" (+{len(names) - 20} more)" if len(names) > 20 else "")
    return f"unknown tool {name!r}; the tools are {shown} (tools/list describes them)"


def _check_own_arguments(name: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """The arguments of one of skillswitch's own tools against the schema ``tools/list``
    publishes (strictly: ``true`` is no integer, ``"3"`` no number), unknown names included:
    a ``ToolError`` naming each problem and the call's shape, not pydantic's report."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = schema.get("required", ())
    problems = unknown_arguments(schema, arguments)
    problem = schema_problem(schema, arguments)
    if problem is not None:
        problems.append(problem)
    if not problems:
        return
    shape = ", ".join(
        f"{key}: {_kind(spec)}{'' if key in required else ' (optional)'}"
        for key, spec in properties.items()
    )
    takes = f"{name} takes {{{shape}}}" if shape else f"{name} takes no arguments"
    raise ToolError(f"invalid arguments for {name}: {'; '.join(problems)}; {takes}")


def _kind(spec: dict[str, Any]) -> str:
    """A parameter's JSON type for a call's shape: ``number``, ``string or array`` (null, the
    optional parameter's default, goes without saying)."""
    if "type" in spec:
        return str(spec["type"])
    kinds = [str(branch.get("type", "any")) for branch in spec.get("anyOf", ())]
    return " or ".join(kind for kind in kinds if kind != "null") or "any"


def _wire(entry: CatalogueTool) -> WireTool:
    hints = entry.hints
    return WireTool(
        name=entry.public_name,
        title=hints.title,
        description=f"[{entry.server}] {entry.description}".strip(),
        input_schema=dict(entry.input_schema),
        output_schema=dict(entry.output_schema) if entry.output_schema else None,
        annotations=ToolAnnotations(
            read_only_hint=hints.read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
    )


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=redact(text))], is_error=True)
