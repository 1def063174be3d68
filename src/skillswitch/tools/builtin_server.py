"""skillswitch's builtin tools as a real MCP server (stdio): exact arithmetic, unit conversion,
the current time and calendar arithmetic. Run with ``python -m skillswitch.tools.builtin_server``;
it prints nothing on stdout besides the protocol."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from skillswitch.tools.builtin import calculate, convert_units, current_time
from skillswitch.tools.dates import calendar as calendar_days

__all__ = ["builtin_server", "main"]

# They read nothing and change nothing: safe to offer to any skill and to call again.
PURE = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def builtin_server() -> MCPServer:
    """The server; each tool is described by the docstring of the function it calls."""
    server = MCPServer("skillswitch-builtin")

    @server.tool(annotations=PURE, description=_described(calculate))
    def calculator(expression: str) -> str:
        try:
            return calculate(expression)
        except (ValueError, ArithmeticError) as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE, description=_described(convert_units))
    def units(value: float, from_unit: str, to_unit: str) -> str:
        try:
            return convert_units(value, from_unit, to_unit)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE, description=_described(current_time))
    def clock(timezone: str = "UTC") -> str:
        try:
            return current_time(timezone)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE, description=_described(calendar_days))
    def calendar(
        date: str,
        until: str = "",
        add_days: int = 0,
        weekdays: bool = False,
        inclusive: bool = False,
    ) -> str:
        try:
            return calendar_days(date, until, add_days, weekdays, inclusive)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    return server


def _described(function: Callable[..., str]) -> str:
    return inspect.cleandoc(function.__doc__ or "")


def main() -> None:
    builtin_server().run()


if __name__ == "__main__":
    main()
