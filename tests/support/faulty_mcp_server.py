"""A deliberately misbehaving MCP server (stdio, raw JSON-RPC, 2025 handshake) for fault tests.

Tools: ``echo`` answers; ``hang`` never answers; ``crash`` exits the process; ``garbage`` writes a
line that is not JSON and then answers nothing; ``wrong_shape`` answers with a result that breaks
the schema; ``flood`` sends 2000 log notifications before answering; ``grow`` adds a tool
(``grown_1``, ``grown_2``...) and announces it with ``notifications/tools/list_changed``. Run:
``python tests/support/faulty_mcp_server.py``. With ``FAULTY_TEXT_REQUIRED=1`` in its
environment every tool requires ``text`` (so that a tool expert can pass it the request).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TEXT_REQUIRED = os.environ.get("FAULTY_TEXT_REQUIRED") == "1"
TOOLS = [
    {
        "name": name,
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"] if name == "echo" or TEXT_REQUIRED else [],
        },
        "annotations": {"readOnlyHint": True},
    }
    for name, description in [
        ("echo", "Echo the text back."),
        ("hang", "Never answers."),
        ("crash", "Exits the server process."),
        ("garbage", "Writes a line that is not JSON."),
        ("wrong_shape", "Answers with an invalid result."),
        ("flood", "Sends many notifications, then answers."),
        ("grow", "Adds a tool and announces the new tool list."),
    ]
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def result(request_id: Any, value: dict[str, Any]) -> None:
    send({"jsonrpc": "2.0", "id": request_id, "result": value})


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            continue  # a notification
        if method == "initialize":
            result(
                request_id,
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {"listChanged": True}},
                    "serverInfo": {"name": "faulty", "version": "1.0"},
                },
            )
        elif method == "tools/list":
            result(request_id, {"tools": TOOLS})
        elif method == "tools/call":
            params = message.get("params") or {}
            name, arguments = params.get("name"), params.get("arguments") or {}
            if name == "echo":
                result(request_id, {"content": [{"type": "text", "text": arguments["text"]}]})
            elif name == "hang":
                continue
            elif name == "crash":
                os._exit(3)
            elif name == "garbage":
                sys.stdout.write("this is not json {\n")
                sys.stdout.flush()
            elif name == "wrong_shape":
                result(request_id, {"content": "not a list", "isError": "maybe"})
            elif name == "flood":
                for i in range(2000):
                    send(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/message",
                            "params": {"level": "info", "data": f"noise {i}"},
                        }
                    )
                result(request_id, {"content": [{"type": "text", "text": "after the flood"}]})
            elif name == "grow":
                added = f"grown_{sum(t['name'].startswith('grown_') for t in TOOLS) + 1}"
                TOOLS.append({**TOOLS[0], "name": added, "description": "Grown by grow."})
                send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
                result(request_id, {"content": [{"type": "text", "text": f"added {added}"}]})
            else:
                send(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "error": {"code": -32602, "message": f"Unknown tool: {name}"},
                    }
                )
        else:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": -32601, "message": f"Method not found: {method}"},
                }
            )


if __name__ == "__main__":
    main()
