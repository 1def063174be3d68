"""skillswitch's MCP server over streamable HTTP, for ``create_app`` to serve at ``/mcp``.

The SDK's session manager is stateful, so that 2025-handshake clients (the MCP Inspector,
most IDEs) get a session with a standing GET stream, on which they are told when the upstream
tool list changes; 2026-07-28 clients are stateless whatever this says. The app's own
``RequestGuard`` checks the API key, the body size and the concurrency before the SDK sees a
request; the SDK checks the ``Host`` and ``Origin`` headers when there is no key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute

from skillswitch.server.mcp import SkillSwitchMCPServer

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
) -> MCPOverHTTP:
    server = SkillSwitchMCPServer(switch, proxy_allow_destructive=proxy_allow_destructive)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(api_key),
        max_request_body_size=max_body_bytes,
    )
    return MCPOverHTTP(server, list(app.routes))


def transport_security(api_key: str | None) -> TransportSecuritySettings:
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
        ],
    )
