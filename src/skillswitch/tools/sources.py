"""Where a model expert's tools come from, per request.

A fixed list (``StaticTools``) or the MCP catalogue (``CatalogueTools``): the tools matching the
expert's patterns, less those the request's policy forbids (servers reserved for other skills;
destructive tools the request's skills do not allow), narrowed to the ``k`` most relevant to the
request when a retriever is given.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio.to_thread

from skillswitch.tools.base import Tool, ToolResult, ToolSpec
from skillswitch.tools.catalogue import CatalogueTool

if TYPE_CHECKING:
    from skillswitch.tools.hub import ToolHub

__all__ = [
    "CatalogueTools",
    "CombinedTools",
    "MCPTool",
    "StaticTools",
    "ToolPolicy",
    "ToolSource",
    "current_policy",
    "enter_tool_policy",
    "leave_tool_policy",
    "tool_policy",
]


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """What the request being answered may use.

    ``skills``: the request's skills (empty: unknown, so servers reserved for particular skills
    are off). ``allow_destructive``: globs of public tool names its skills allow even though the
    tools declare destructive effects.
    """

    skills: tuple[str, ...] = ()
    allow_destructive: tuple[str, ...] = ()

    def permits(self, tool: CatalogueTool, server_skills: Sequence[str]) -> bool:
        if server_skills and not set(server_skills) & set(self.skills):
            return False
        if tool.hints.destructive:
            return any(fnmatch.fnmatchcase(tool.public_name, p) for p in self.allow_destructive)
        return True


_POLICY: contextvars.ContextVar[ToolPolicy | None] = contextvars.ContextVar(
    "skillswitch_tool_policy", default=None
)
_NO_POLICY = ToolPolicy()


def current_policy() -> ToolPolicy:
    """The policy of the request being answered (tasks inherit it from the request's task);
    outside any request, the strictest: no skills, nothing destructive."""
    return _POLICY.get() or _NO_POLICY


@contextmanager
def tool_policy(policy: ToolPolicy) -> Iterator[ToolPolicy]:
    """Apply ``policy`` to the tools handed out inside the block."""
    token = enter_tool_policy(policy)
    try:
        yield policy
    finally:
        leave_tool_policy(token)


def enter_tool_policy(policy: ToolPolicy) -> contextvars.Token[ToolPolicy | None]:
    """Apply ``policy`` until ``leave_tool_policy`` (for async generators, where a ``with``
    block would span yields)."""
    return _POLICY.set(policy)


def leave_tool_policy(token: contextvars.Token[ToolPolicy | None]) -> None:
    with contextlib.suppress(ValueError):  # from another task's context, which never had it
        _POLICY.reset(token)


@runtime_checkable
class ToolSource(Protocol):
    async def tools_for(self, request: str) -> Sequence[Tool]:
        """The tools a model may use to answer ``request`` (the last user message)."""
        ...


@dataclass(frozen=True)
class StaticTools:
    """The same tools for every request."""

    tools: Sequence[Tool]

    async def tools_for(self, request: str) -> Sequence[Tool]:
        return self.tools


class MCPTool:
    """One catalogue tool as a ``Tool``: calls go through the hub (schema-checked first).
    Given a public name instead of an entry, it finds the entry on first use."""

    def __init__(
        self, hub: ToolHub, entry: CatalogueTool | str, *, timeout_s: float | None = None
    ) -> None:
        self.hub = hub
        self.entry = entry
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return self.entry if isinstance(self.entry, str) else self.entry.public_name

    @property
    def spec(self) -> ToolSpec:
        entry = self.hub.known(self.entry) if isinstance(self.entry, str) else self.entry
        return entry.spec if entry is not None else ToolSpec(self.name, "", {"type": "object"})

    async def resolve(self) -> CatalogueTool | None:
        """The catalogue entry (listing the servers if it is not known yet)."""
        entry = self.entry
        if not isinstance(entry, str):
            return entry
        # Concurrent calls may all be listing the servers: each looks up the name it read,
        # not ``self.entry``, which another may have resolved in the meantime.
        found = self.hub.known(entry)
        if found is None:
            await self.hub.tools()
            found = self.hub.known(entry)
        if found is not None:
            self.entry = found
        return found

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        entry = await self.resolve()
        if entry is not None and not current_policy().permits(entry, ()):
            return ToolResult(
                f"{entry.public_name} declares destructive effects and this request's "
                "skills do not allow it (skills[].allow_destructive in the config)",
                is_error=True,
            )
        return await self.hub.call(self.name, arguments, timeout_s=self.timeout_s)


Retriever = Callable[
    [str, Sequence[CatalogueTool], Sequence[CatalogueTool], int], Sequence[CatalogueTool]
]
"""``(request, catalogue, candidates, k) -> the k most relevant candidates``, best first (e.g.
``ToolFinder.select``; it may block: it runs in a worker thread)."""


@dataclass
class CatalogueTools:
    """The catalogue tools whose public names match ``patterns`` (globs), filtered by the
    request's ``ToolPolicy``; at most ``k`` of them, chosen by ``retriever``, when both are set."""

    hub: ToolHub
    patterns: Sequence[str]
    k: int | None = None
    retriever: Retriever | None = None
    timeout_s: float | None = None

    async def tools_for(self, request: str) -> Sequence[Tool]:
        policy = current_policy()
        catalogue = await self.hub.tools()
        entries = [
            entry
            for entry in catalogue
            if any(fnmatch.fnmatchcase(entry.public_name, p) for p in self.patterns)
            and policy.permits(entry, self.hub.servers[entry.server].skills)
        ]
        if self.k is not None and self.retriever is not None and len(entries) > self.k:
            entries = list(
                await anyio.to_thread.run_sync(self.retriever, request, catalogue, entries, self.k)
            )
        return [MCPTool(self.hub, entry, timeout_s=self.timeout_s) for entry in entries]


@dataclass(frozen=True)
class CombinedTools:
    """Several sources' tools together (e.g. builtin functions and MCP tools)."""

    sources: Sequence[ToolSource]

    async def tools_for(self, request: str) -> Sequence[Tool]:
        tools: list[Tool] = []
        for source in self.sources:
            tools.extend(await source.tools_for(request))
        return tools
