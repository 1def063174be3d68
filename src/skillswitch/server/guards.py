"""What every request passes before an endpoint sees it: the API key (without one, the
loopback server's defence against web pages), the client's request rate, the body size, and
the number of requests in flight. One plain ASGI middleware, so that a
refused request costs no parsing, and a streamed answer counts as in flight until its last byte
is sent.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillswitch.redaction import register_secret
from skillswitch.server.hosting import is_loopback
from skillswitch.server.openai_errors import OpenAIError
from skillswitch.server.rate_limit import RateLimiter

__all__ = ["RequestGuard"]

# JSON-RPC codes of the refusals on an MCP endpoint: the request is refused as sent (-32600),
# or the server is busy (-32000, a server-defined error: retry).
_JSONRPC_CODES = {401: -32600, 413: -32600, 429: -32000}


class RequestGuard:
    """Refuses with OpenAI-shaped errors: 401 (``api_key`` set and the bearer token missing or
    wrong), 413 (body over ``max_body_bytes``), 429 (``max_concurrency`` requests already in
    flight). The key and the concurrency cap apply to paths under ``protected_prefix`` (one
    prefix or several); health probes stay open, as in vLLM. Under ``jsonrpc_prefix`` (an MCP
    endpoint) the same refusals are JSON-RPC error bodies, which MCP clients show as they are.

    ``loopback_only`` (a server without a key, which ``serve`` binds to loopback): a protected
    request must be addressed to a loopback name (else 421: a page whose name resolves here,
    DNS rebinding) and, when a browser says which page sent it (``Origin``), come from a
    loopback page or one of ``origins`` (else 403). Without this a page on any site could post
    a chat completion as a "simple" request, no preflight, and spend the experts' budget.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        max_concurrency: int,
        protected_prefix: str | tuple[str, ...] = "/v1",
        jsonrpc_prefix: str | tuple[str, ...] = (),
        rate_limit: RateLimiter | None = None,
        loopback_only: bool = False,
        origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self._loopback_only = loopback_only
        self._origins = frozenset(origins)
        self.rate_limit = rate_limit
        self._jsonrpc_prefix = jsonrpc_prefix
        register_secret(api_key)
        self._key = api_key.encode() if api_key is not None else None
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self._prefix = protected_prefix
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        protected = scope["path"].startswith(self._prefix)
        headers = dict(scope["headers"])  # read once for every check below
        if protected and (refusal := self._check_browser(headers)) is not None:
            await self._refuse(refusal, scope, receive, send)
            return
        if protected and (refusal := self._check_key(headers)) is not None:
            await self._refuse(refusal, scope, receive, send)
            return
        if protected and (refusal := self._check_rate(scope)) is not None:
            await self._refuse(refusal, scope, receive, send)
            return
        body = await self._read_body(headers, receive)
        if isinstance(body, OpenAIError):
            await self._refuse(body, scope, receive, send)
            return
        if body is None:  # the client left while sending
            return
        if protected and self.in_flight >= self.max_concurrency:
            refusal = OpenAIError(
                429,
                f"{self.in_flight} requests are in flight, the most this server takes at once "
                f"(max_concurrency {self.max_concurrency}); retry shortly",
                headers={"Retry-After": "1"},
            )
            await self._refuse(refusal, scope, receive, send)
            return
        if not protected:
            await self.app(scope, _replay(body, receive), send)
            return
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # The answer is out, and its client may send the next request before this
                # handler returns (closing streams, metrics); that request must find room.
                # Counting until the return refused 1 in 7 requests of 1000 closed-loop
                # streaming clients with max_concurrency 1100 (benchmarks/http_overhead.py).
                release()

        try:
            await self.app(scope, _replay(body, receive), sending)
        finally:
            release()

    async def _refuse(self, error: OpenAIError, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith(self._jsonrpc_prefix):
            # The MCP client surfaces a JSON-RPC error body at any status (else only "Server
            # returned an error response"); no id: the request was not read.
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": _JSONRPC_CODES.get(error.status, -32600),
                    "message": error.message,
                },
            }
            response = JSONResponse(body, status_code=error.status, headers=error.headers)
        else:
            response = error.response()
        await response(scope, receive, send)

    def _check_rate(self, scope: Scope) -> OpenAIError | None:
        if self.rate_limit is None:
            return None
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = self.rate_limit.wait_for(address)
        if wait == 0.0:
            return None
        limiter = self.rate_limit
        return OpenAIError(
            429,
            f"too many requests from {address}: this server takes {limiter.per_second:g} per "
            f"second per client (bursts of {limiter.burst}); retry in {wait:.2f} s",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def _check_browser(self, headers: dict[bytes, bytes]) -> OpenAIError | None:
        if not self._loopback_only:
            return None
        host = headers.get(b"host", b"").decode("latin-1")
        if host and not is_loopback(_hostname(host)):
            return OpenAIError(
                421,
                f"this server answers requests addressed to 127.0.0.1, localhost or [::1], not "
                f"{host!r} (a web page whose name resolves here is refused); to be reached by "
                "other names, serve with --api-key-env",
                code="misdirected_request",
            )
        origin = headers.get(b"origin")
        if origin is None:
            return None  # not sent by a web page
        page = origin.decode("latin-1")
        if page.lower() in self._origins or _loopback_page(page):
            return None
        return OpenAIError(
            403,
            f"requests from web pages of {page!r} are refused: without an API key a page of "
            f"any site could spend this server's experts; allow it with --cors-origin {page}, "
            "or serve with --api-key-env",
            code="origin_not_allowed",
        )

    def _check_key(self, headers: dict[bytes, bytes]) -> OpenAIError | None:
        if self._key is None:
            return None
        header = headers.get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if not header:
            problem = "no API key was sent; send it as the header 'Authorization: Bearer <key>'"
        elif scheme.lower() != b"bearer" or not token.strip():
            problem = "the Authorization header is not 'Bearer <key>'"
        elif not hmac.compare_digest(token.strip(), self._key):
            problem = "the API key is not valid for this server"  # never echo what was sent
        else:
            return None
        return OpenAIError(401, problem, headers={"WWW-Authenticate": "Bearer"})

    async def _read_body(
        self, headers: dict[bytes, bytes], receive: Receive
    ) -> bytes | OpenAIError | None:
        """The whole body (small by construction), or the 413 once it passes the limit."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return self._too_large(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int | None) -> OpenAIError:
        sent = f"{size} bytes" if size is not None else f"over {self.max_body_bytes} bytes"
        return OpenAIError(
            413,
            f"the request body is {sent}; this server takes at most {self.max_body_bytes} bytes "
            "(send fewer or shorter texts per request)",
        )


def _hostname(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8000`` is ``::1``, ``localhost:8000`` is
    ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _loopback_page(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")
    except ValueError:
        return False


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """The buffered body as one message, then the real channel (for the disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
