"""skillswitch as an MCP server: ``ask`` (a full run: the answer and its trace as structured
content), ``route`` (the decision alone), ``list_skills``, ``find_tools`` (retrieval over the
upstream catalogue), and every upstream tool proxied under its ``server__tool`` name.

Both protocol eras are served (``MCPServer`` answers the 2026-07-28 probe and the 2025
handshake). Proxied calls are schema-checked before they leave; upstream failures come back as
``is_error`` results, never as a crash of this server. Destructive upstream tools are not
proxied unless ``tools.proxy_allow_destructive`` names them.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Tool as WireTool
from pydantic import BaseModel, Field

from skillswitch.exceptions import SkillSwitchError
from skillswitch.tools.base import ToolResult
from skillswitch.tools.catalogue import CatalogueTool

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["SkillSwitchMCPServer"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
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
            **options,
        )
        self.switch = switch
        self.proxy_allow_destructive = tuple(proxy_allow_destructive)
        self._register()

    # --- proxying -------------------------------------------------------------------------------

    async def list_tools(self) -> list[WireTool]:
        own = await super().list_tools()
        return own + [_wire(entry) for entry in await self._proxied()]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        hub = self.switch.hub
        if hub is None or "__" not in name or self._tool_manager.get_tool(name) is not None:
            return await super().call_tool(name, arguments, context)
        entry = hub.known(name)
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
        async def ask(request: str) -> AskResult:
            """Answer a request: skillswitch routes it by skill to the best experts and tools,
            combines their answers, and returns the answer with a trace of how it was made."""
            try:
                answer = await switch.run(_nonempty(request))
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
            finder, hub = switch.tool_finder, switch.hub
            catalogue = [] if hub is None else await hub.tools()
            entries = self._proxiable(catalogue)
            if not entries or finder is None:
                return FoundTools(tools=[], no_tool_applies=True)
            ranked, applies = await anyio.to_thread.run_sync(
                lambda: finder.search(_nonempty(query), catalogue, k, within=entries)
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


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ToolError("the request is empty; send the text to route or answer")
    return text


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
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
