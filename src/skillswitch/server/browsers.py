"""What browsers need from the servers: CORS for chat pages and MCP clients served from
another origin (``serve --cors-origin``), and ``HEAD`` answered as ``GET`` (uptime checks).

Without ``--cors-origin`` no cross-origin page may read an answer (browsers enforce it), and
without an API key the server is on loopback, where a page on any site could otherwise spend
its experts' budget: ``*`` therefore needs a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillswitch.exceptions import ConfigError

__all__ = ["CORS_EXPOSED_HEADERS", "HeadAsGet", "allow_cross_origin", "check_cors_origins"]

# Headers a page may read from an answer: the MCP session (streamable HTTP), a 429's wait,
# and skillswitch's own (the route taken, the request fields it ignored).
CORS_EXPOSED_HEADERS = (
    "Mcp-Session-Id",
    "Retry-After",
    "X-Skillswitch-Route",
    "X-Skillswitch-Ignored-Fields",
)


def check_cors_origins(
    origins: Sequence[str], api_key: str | None, *, where: str = "--cors-origin"
) -> tuple[str, ...]:
    """The origins, each ``scheme://host[:port]`` as a browser sends it, or ``*`` (any, with an
    API key only); a ``ConfigError`` at ``where`` naming the first that is not."""
    checked: list[str] = []
    for origin in origins:
        if origin == "*":
            if api_key is None:
                raise ConfigError.single(
                    where,
                    "'*' lets a page on any site call this server, and without an API key "
                    "it would spend your experts' budget: name the origins (e.g. "
                    "--cors-origin http://localhost:3000) or pass --api-key-env VARIABLE",
                )
            checked.append(origin)
            continue
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ConfigError.single(
                where,
                f"{origin!r} is not an origin; give scheme://host[:port] as the browser's "
                "address bar shows it, e.g. http://localhost:3000 or https://chat.example.com",
            )
        checked.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(dict.fromkeys(checked))


def allow_cross_origin(app: Starlette, origins: Sequence[str]) -> None:
    """Let pages of ``origins`` (checked) call ``app`` from a browser: add this last, outermost,
    since a preflight carries no key and refusals need the headers too."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "DELETE"],  # DELETE ends an MCP session
        allow_headers=["*"],
        expose_headers=list(CORS_EXPOSED_HEADERS),
        max_age=600,
    )


class HeadAsGet:
    """``HEAD`` answered as ``GET`` without the body, headers unchanged (RFC 9110 9.3.2): the
    API's routes declare ``GET`` only, so load balancers' and uptime monitors' ``HEAD`` probes
    got 405. Paths under ``skip`` (the MCP endpoint, whose ``GET`` opens an event stream) are
    passed on as they are."""

    def __init__(self, app: ASGIApp, *, skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self._skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or (self._skip and scope["path"].startswith(self._skip))
        ):
            await self.app(scope, receive, send)
            return
        ended = False

        async def headless(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False) and not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headless)
