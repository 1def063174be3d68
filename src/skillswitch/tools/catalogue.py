"""The catalogue: every upstream tool under one public ``server__tool`` name, with its annotations.

Tool annotations are hints from the server (MCP spec): a tool that does not declare itself
read-only or non-destructive is treated as destructive, as the spec's defaults say, and the
catalogue never hands one out unless the caller's policy allows it by name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillswitch.exceptions import UnknownToolError
from skillswitch.tools.base import ToolSpec
from skillswitch.tools.names import ToolNames

__all__ = ["Catalogue", "CatalogueTool", "ToolFilter", "ToolHints"]


@dataclass(frozen=True, slots=True)
class ToolHints:
    """The MCP tool annotations, with the spec's defaults for what a server left out."""

    read_only: bool = False
    destructive: bool = True
    idempotent: bool = False
    open_world: bool = True
    title: str | None = None

    @classmethod
    def from_annotations(cls, annotations: Any) -> ToolHints:
        """From an ``mcp`` ``ToolAnnotations`` (or ``None``: nothing declared)."""
        if annotations is None:
            return cls()
        read_only = bool(getattr(annotations, "read_only_hint", None) or False)
        declared_destructive = getattr(annotations, "destructive_hint", None)
        idempotent = getattr(annotations, "idempotent_hint", None)
        open_world = getattr(annotations, "open_world_hint", None)
        return cls(
            read_only=read_only,
            # Only meaningful for tools that write; a read-only tool destroys nothing.
            destructive=not read_only
            and (True if declared_destructive is None else bool(declared_destructive)),
            idempotent=read_only or bool(idempotent),
            open_world=True if open_world is None else bool(open_world),
            title=getattr(annotations, "title", None),
        )

    @property
    def safe_to_retry(self) -> bool:
        """Whether calling twice does no more than calling once."""
        return self.read_only or self.idempotent

    def to_dict(self) -> dict[str, Any]:
        return {
            "read_only": self.read_only,
            "destructive": self.destructive,
            "idempotent": self.idempotent,
            "open_world": self.open_world,
        }


@dataclass(frozen=True, slots=True)
class CatalogueTool:
    """One upstream tool: its public name, where it lives, and what it declares."""

    public_name: str
    server: str
    name: str
    description: str
    input_schema: Mapping[str, Any]
    hints: ToolHints = field(default_factory=ToolHints)
    output_schema: Mapping[str, Any] | None = None

    @property
    def spec(self) -> ToolSpec:
        """What a model sees: the public name, the description and the input schema."""
        return ToolSpec(self.public_name, self.description, self.input_schema)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        properties = self.input_schema.get("properties") or {}
        return tuple(properties) if isinstance(properties, Mapping) else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.public_name,
            "server": self.server,
            "tool": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
            "annotations": self.hints.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Which of a server's tools are exposed: ``allow`` (empty: all) minus ``deny``; globs on
    the server's own tool names, e.g. ``["git_*"]``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def admits(self, tool: str) -> bool:
        if self.allow and not any(fnmatch.fnmatchcase(tool, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(tool, p) for p in self.deny)


class Catalogue:
    """All servers' tools under unique OpenAI-valid public names, with the reverse map.

    Names are stable for the catalogue's lifetime: a server that is re-listed (after a change
    notification or a restart) keeps the names its tools had.
    """

    def __init__(self) -> None:
        self._names = ToolNames()
        self._by_server: dict[str, dict[str, CatalogueTool]] = {}

    def replace_server(
        self, server: str, tools: Iterable[Any], tool_filter: ToolFilter | None = None
    ) -> list[CatalogueTool]:
        """Set ``server``'s tools from an ``mcp`` listing (objects with ``name``,
        ``description``, ``input_schema``, ``annotations``); returns what was kept."""
        tool_filter = tool_filter or ToolFilter()
        entries: dict[str, CatalogueTool] = {}
        for tool in tools:
            if not tool_filter.admits(tool.name):
                continue
            entries[tool.name] = CatalogueTool(
                public_name=self._names.add(server, tool.name),
                server=server,
                name=tool.name,
                description=(tool.description or "").strip(),
                input_schema=dict(tool.input_schema or {"type": "object"}),
                hints=ToolHints.from_annotations(tool.annotations),
                output_schema=getattr(tool, "output_schema", None),
            )
        self._by_server[server] = entries
        return list(entries.values())

    def drop_server(self, server: str) -> None:
        self._by_server.pop(server, None)

    def get(self, public_name: str) -> CatalogueTool:
        """The tool of a public name; ``UnknownToolError`` (close matches) when there is none."""
        if public_name in self._names:
            server, tool = self._names.resolve(public_name)
            found = self._by_server.get(server, {}).get(tool)
            if found is not None:
                return found
        raise UnknownToolError(public_name, [t.public_name for t in self])

    def matching(self, patterns: Sequence[str]) -> list[CatalogueTool]:
        """Tools whose public name matches any glob, e.g. ``["git__*", "time__convert_time"]``."""
        return [t for t in self if any(fnmatch.fnmatchcase(t.public_name, p) for p in patterns)]

    @property
    def servers(self) -> list[str]:
        return list(self._by_server)

    def __iter__(self) -> Iterator[CatalogueTool]:
        for tools in self._by_server.values():
            yield from tools.values()

    def __len__(self) -> int:
        return sum(len(tools) for tools in self._by_server.values())

    def __contains__(self, public_name: object) -> bool:
        try:
            self.get(str(public_name))
        except UnknownToolError:
            return False
        return True
