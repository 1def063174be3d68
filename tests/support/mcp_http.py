"""What a client sends to open an MCP session over streamable HTTP (the 2025 handshake), for
tests that drive ``/mcp`` with plain httpx."""

from __future__ import annotations

from typing import Any

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "httpx", "version": "0"},
    },
}
