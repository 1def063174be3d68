"""A tool whose server failed to start is not merely 'unknown': the error says the server is
not available and why, so the caller fixes the server, not the name."""

from __future__ import annotations

from mcp import StdioServerParameters

from skillswitch.tools.connection import ServerSettings
from skillswitch.tools.hub import HubServer, ToolHub


def test_a_tool_of_a_server_that_did_not_start_says_why() -> None:
    broken = StdioServerParameters(command="/bin/sh", args=["-c", "echo boom >&2; exit 3"])
    with ToolHub([HubServer(ServerSettings("broken", broken))]) as hub:
        result = hub.call_sync("broken__anything", {})
    assert result.is_error
    assert result.text.startswith("unknown tool 'broken__anything'")
    assert "MCP server 'broken' is not available: failed to start" in result.text
