"""The routes of the playground: ``GET /`` (the page) and ``GET /playground/{name}`` (its
script and style sheet).

Open without the API key: the page holds no data; it asks for the key when the API answers 401
and sends it as a bearer token. Every answer carries a strict Content-Security-Policy (scripts
and styles from this server only, requests to this server only, no inline script), and the
script inserts whatever the server sends as text, never as HTML.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from skillswitch.server.openai_errors import OpenAIError

__all__ = ["ASSET_PREFIX", "CONTENT_SECURITY_POLICY", "router"]

ASSET_PREFIX = "/playground"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# An explicit list (STYLE 6): a request names one of these, never a path on disk.
_MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}
_ASSETS = tuple(name for name in _MEDIA_TYPES if name != "index.html")
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on each load, so that a new version of skillswitch serves its own script.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> bytes:
    return (
        resources.files("skillswitch.server.api.playground").joinpath("static", name).read_bytes()
    )


def _file(name: str) -> Response:
    if name not in _ASSETS:
        raise OpenAIError(
            404,
            f"no playground file {name!r}; the playground has {', '.join(_ASSETS)} "
            f"under {ASSET_PREFIX}/ (the page itself is at /)",
        )
    return Response(_read(name), media_type=_MEDIA_TYPES[name], headers=_HEADERS)


@router.get("/")
async def page() -> Response:
    """The playground's page: a chat that shows each answer's route beside it."""
    name = "index.html"
    return Response(_read(name), media_type=_MEDIA_TYPES[name], headers=_HEADERS)


@router.get(ASSET_PREFIX + "/{name}")
async def asset(name: str) -> Response:
    """The page's script or style sheet; any other name is a 404."""
    return _file(name)
