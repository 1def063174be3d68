"""The builtin tools as a real MCP server: in-process and as a stdio subprocess."""

from __future__ import annotations

import sys

import pytest
from mcp import Client, StdioServerParameters

from skillswitch.tools.builtin_server import builtin_server

pytestmark = pytest.mark.anyio


async def test_lists_and_calls_the_builtin_tools_in_process() -> None:
    async with Client(builtin_server()) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == {"calculator", "units", "clock", "calendar"}
        result = await client.call_tool("units", {"value": 5, "from_unit": "mi", "to_unit": "km"})
        assert not result.is_error
        assert result.content[0].text == "5 mi = 8.04672 km"  # type: ignore[union-attr]
        refused = await client.call_tool("calculator", {"expression": "open('/etc/passwd')"})
        assert refused.is_error
        assert "unsupported element" in refused.content[0].text  # type: ignore[union-attr]
        span = await client.call_tool("calendar", {"date": "2026-03-03", "until": "2026-06-18"})
        assert span.content[0].text == (  # type: ignore[union-attr]
            "2026-03-03 to 2026-06-18: 107 days (15 weeks and 2 days)"
        )
        weekdays = await client.call_tool(
            "calendar", {"date": "2026-03-02", "until": "2026-03-16", "weekdays": True}
        )
        assert weekdays.content[0].text.startswith(  # type: ignore[union-attr]
            "2026-03-02 to 2026-03-16: 10 weekdays"
        )
        bad = await client.call_tool("calendar", {"date": "3 March"})
        assert bad.is_error
        assert "use YYYY-MM-DD" in bad.content[0].text  # type: ignore[union-attr]


async def test_serves_over_stdio_as_a_subprocess() -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "skillswitch.tools.builtin_server"]
    )
    async with Client(params) as client:
        result = await client.call_tool("calculator", {"expression": "17 * 23"})
        assert result.content[0].text == "391"  # type: ignore[union-attr]
        wrong = await client.call_tool("units", {"value": 1, "from_unit": "kg", "to_unit": "km"})
        assert wrong.is_error
        assert "cannot convert mass" in wrong.content[0].text  # type: ignore[union-attr]
