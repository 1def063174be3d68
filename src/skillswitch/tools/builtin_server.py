"""skillswitch's builtin tools as a real MCP server (stdio): exact arithmetic, unit conversion,
the current time and calendar arithmetic. Run with ``python -m skillswitch.tools.builtin_server``;
it prints nothing on stdout besides the protocol."""

from __future__ import annotations

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
    server = MCPServer("skillswitch-builtin")

    @server.tool(annotations=PURE)
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression exactly, e.g. "17 * 23", "sqrt(2) / 3" or
        "mean(4, 8, 15), stdev(4, 8, 15)" (several, comma-separated, give several results).
        Supports + - * / // % ** and sqrt, log, exp, sin, cos, tan, abs, round, pi, e; gcd,
        lcm, factorial, comb, perm; mean, median, stdev, pstdev, variance, min, max, sum; and
        is_prime(n) on its own ("221 is not prime: it is 13 x 17")."""
        try:
            return calculate(expression)
        except (ValueError, ArithmeticError) as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE)
    def units(value: float, from_unit: str, to_unit: str) -> str:
        """Convert a quantity between units of length, mass, volume, time, speed, data size or
        temperature, e.g. value=5, from_unit="mi", to_unit="km"."""
        try:
            return convert_units(value, from_unit, to_unit)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE)
    def clock(timezone: str = "UTC") -> str:
        """The current date and time in an IANA timezone, e.g. "Europe/Paris" (default UTC)."""
        try:
            return current_time(timezone)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=PURE)
    def calendar(date: str, until: str = "", add_days: int = 0) -> str:
        """Dates: the weekday of ``date`` (YYYY-MM-DD or "today"); with ``until``, the days
        from ``date`` to it; with ``add_days``, the date that many days later (negative:
        earlier)."""
        try:
            return calendar_days(date, until, add_days)
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    return server


def main() -> None:
    builtin_server().run()


if __name__ == "__main__":
    main()
