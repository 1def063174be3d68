"""skillswitch's MCP server over streamable HTTP, for ``create_app`` to serve at ``/mcp``.

The SDK's session manager is stateful, so that 2025-handshake clients (the MCP Inspector,
most IDEs) get a session with a standing GET stream, on which they are told when the upstream
tool list changes; 2026-07-28 clients are stateless whatever this says. The app's own
``RequestGuard`` checks the API key, the body size and the concurrency before the SDK sees a
request; the SDK checks the ``Host`` and ``Origin`` headers when there is no key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mcp_types as types
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillswitch.server.mcp import SkillSwitchMCPServer
from skillswitch.server.mcp_stdio import valid_request_id

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["MCP_PATH", "MCPOverHTTP", "mcp_over_http"]

MCP_PATH = "/mcp"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class MCPOverHTTP:
    """The server, and the routes that serve it (the app's lifespan must run
    ``server.session_manager.run()``: routes added to an app get no lifespan of their own)."""

    server: SkillSwitchMCPServer
    routes: list[BaseRoute]


def mcp_over_http(
    switch: Switch,
    *,
    api_key: str | None,
    max_body_bytes: int,
    proxy_allow_destructive: Sequence[str] = (),
    origins: Sequence[str] = (),
) -> MCPOverHTTP:
    """``origins``: pages of these origins may call without a key too (``serve
    --cors-origin``), besides loopback ones."""
    server = SkillSwitchMCPServer(switch, proxy_allow_destructive=proxy_allow_destructive)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(api_key, origins),
        max_request_body_size=max_body_bytes,
    )
    routes = list(app.routes)
    for route in routes:
        if isinstance(route, Route):
            route.app = RequestIdScreen(route.app)
    return MCPOverHTTP(server, routes)


class RequestIdScreen:
    """Answers a POSTed request whose id is neither a string nor an integer (``[1]``, ``1.5``,
    ``true``, ``null``) with a JSON-RPC error, as JSON-RPC asks: the SDK reads such a message
    as a notification and answers 202, so a client waiting for its response would wait
    forever (the stdio server screens the same frames, ``mcp_stdio``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more, messages = b"", True, []
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if _has_bad_request_id(body):
            error = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": types.INVALID_REQUEST,
                    "message": "Invalid request: id must be a string or an integer "
                    "(a notification has none)",
                },
            }
            response = Response(json.dumps(error), status_code=400, media_type="application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, _replayed(body, messages, receive), send)


def _has_bad_request_id(body: bytes) -> bool:
    if b'"id"' not in body:
        return False
    try:
        frame = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the SDK answers what is not JSON
    if not isinstance(frame, dict) or "method" not in frame or "id" not in frame:
        return False
    return not valid_request_id(frame["id"])


def _replayed(body: bytes, messages: list[Message], receive: Receive) -> Receive:
    """``receive`` for the app after the body was read here: the body once, then the rest."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    pending += [m for m in messages if m["type"] != "http.request"]

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def transport_security(
    api_key: str | None, origins: Sequence[str] = ()
) -> TransportSecuritySettings:
    """Without a key the server is on loopback (``serve`` refuses otherwise), and a web page
    could reach it through DNS rebinding (a name of the attacker's resolving to 127.0.0.1): only
    requests addressed to a loopback name pass. With a key, the key keeps strangers out (a
    browser never sends it on its own), and a proxy in front may use any ``Host``."""
    if api_key is not None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{host}{port}" for host in _LOOPBACK_HOSTS for port in ("", ":*")],
        allowed_origins=[
            f"http{tls}://{host}{port}"
            for tls in ("", "s")
            for host in _LOOPBACK_HOSTS
            for port in ("", ":*")
        ]
        + list(origins),
    )
