"""Namespaced tool names: ``server__tool``, valid for OpenAI function calling, reversible.

MCP allows tool names of ``[A-Za-z0-9._-]{1,128}``; OpenAI function names only
``[A-Za-z0-9_-]{1,64}``. Characters outside the OpenAI set become ``_``; a name that would be too
long, or collide with one already taken, is shortened and given a short hash of the original.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["SEPARATOR", "ToolNames"]

SEPARATOR = "__"
MAX_LENGTH = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


class ToolNames:
    """Assigns each (server, tool) pair a unique public name and maps it back.

    >>> names = ToolNames()
    >>> names.add("time", "get.current-time")
    'time__get_current-time'
    >>> names.resolve("time__get_current-time")
    ('time', 'get.current-time')
    """

    def __init__(self) -> None:
        self._public: dict[tuple[str, str], str] = {}
        self._origin: dict[str, tuple[str, str]] = {}

    def add(self, server: str, tool: str) -> str:
        key = (server, tool)
        if key in self._public:
            return self._public[key]
        name = _INVALID.sub("_", f"{server}{SEPARATOR}{tool}")
        if len(name) > MAX_LENGTH or name in self._origin:
            digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
            name = f"{name[: MAX_LENGTH - 9]}_{digest}"
        self._public[key] = name
        self._origin[name] = key
        return name

    def resolve(self, name: str) -> tuple[str, str]:
        """(server, original tool name) of a public name; KeyError names the unknown one."""
        try:
            return self._origin[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._origin

    def __len__(self) -> int:
        return len(self._origin)
