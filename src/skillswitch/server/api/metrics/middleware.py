"""Counts every request, refused ones included (it sits outside the request guard)."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillswitch.server.api.metrics.collectors import Metrics

__all__ = ["ENDPOINTS", "MetricsMiddleware", "endpoint_of"]

ENDPOINTS = ("/v1/chat/completions", "/v1/models", "/v1/route", "/healthz", "/metrics", "/mcp")
_MODEL_PATH = "/v1/models/"
_MAX_ERROR_BODY = 64 * 1024


def endpoint_of(path: str) -> str:
    """The endpoint label of a path: a route of the app, else ``other`` (a client's typos must
    not grow the label set)."""
    if path in ENDPOINTS:
        return path
    if path.startswith(_MODEL_PATH):
        return _MODEL_PATH + "{model}"
    return "other"


class MetricsMiddleware:
    """Records each request's endpoint, model (what the endpoint stored in
    ``request.state.model``), status, duration and, for errors, the OpenAI error code.

    The count is made before the last byte of the answer is sent, so a client that has its
    answer sees it counted in ``/metrics``.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = endpoint_of(scope["path"])
        status = 500
        error_body = bytearray()
        recorded = False
        in_flight = self.metrics.child(self.metrics.in_flight, endpoint)
        in_flight.inc()

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            in_flight.dec()
            state = scope.get("state") or {}
            model = str(state.get("model", ""))
            code = _error_code(bytes(error_body)) if status >= 400 else None
            self.metrics.observe_request(
                endpoint, model, status, time.perf_counter() - started, code
            )

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                if status >= 400 and len(error_body) < _MAX_ERROR_BODY:
                    error_body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    record()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            record()  # a request that ended without a complete answer (the client left)


def _error_code(body: bytes) -> str | None:
    """``error.code`` (else ``error.type``) of an OpenAI error body."""
    try:
        error = json.loads(body).get("error") or {}
        code = error.get("code") or error.get("type")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None
