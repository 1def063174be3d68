"""RequestGuard on its own, as plain ASGI: a request counts as in flight until the last byte
of its answer is sent, not until its handler returns."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from skillswitch.server.guards import RequestGuard

pytestmark = pytest.mark.anyio


def scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}


async def empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Answered:
    """An app that answers at once, then lingers (as a stream's cleanup does) until told."""

    def __init__(self) -> None:
        self.answered = anyio.Event()
        self.finish = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        self.answered.set()
        await self.finish.wait()


async def test_a_request_leaves_the_count_with_its_last_byte() -> None:
    app = Answered()
    guard = RequestGuard(app, api_key=None, max_body_bytes=1024, max_concurrency=1)
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async with anyio.create_task_group() as group:
        group.start_soon(guard, scope(), empty_body, send)
        await app.answered.wait()
        assert guard.in_flight == 0  # answered, though its handler has not returned
        second = Answered()
        guard.app = second
        group.start_soon(guard, scope(), empty_body, send)
        await second.answered.wait()
        assert guard.in_flight == 0
        app.finish.set()
        second.finish.set()
    assert statuses == [200, 200]  # the second request found room: no 429
    assert guard.in_flight == 0


async def test_a_request_still_answering_holds_its_place() -> None:
    started = anyio.Event()
    release = anyio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        started.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    guard = RequestGuard(streaming, api_key=None, max_body_bytes=1024, max_concurrency=1)
    refusals: list[Any] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 429:
            refusals.append(message)

    async with anyio.create_task_group() as group:
        group.start_soon(guard, scope(), empty_body, send)
        await started.wait()
        assert guard.in_flight == 1
        await guard(scope(), empty_body, send)  # refused at once: the stream is still open
        assert len(refusals) == 1
        release.set()
    assert guard.in_flight == 0
