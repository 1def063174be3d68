"""A real OpenAI-compatible ``/v1/chat/completions`` upstream (raw ASGI) that misbehaves at a
configurable rate, for fault-injection tests and the soak run.

Each request answers ``echo: <last user message>`` (streamed word by word or not, the shapes of
tests/support/chat_app.py), unless a fault is drawn for it. The draw is seeded and depends only
on ``(seed, request id, model, n)`` (``n``: how many times this model has been asked for this
request), so a run's faults do not depend on the order in which concurrent requests arrive.
The request id is read from the last user message, ``[req <id>] ...``.

Faults (``FAULT_KINDS``):

- ``http_500``: a 500 with an OpenAI error body;
- ``rate_limit_429``: a 429 with ``Retry-After`` (``retry_after``, seconds as text);
- ``stall``: no answer until the client leaves or ``stall_s`` passes (past the expert's timeout);
- ``reset``: the TCP connection is reset (RST, SO_LINGER 0) without any response;
- ``truncated_json``: a 200 whose JSON body is cut short (streamed: an event's JSON cut short);
- ``stream_dies``: the response dies midway: a stream after 0..n-1 of its words (the
  connection dropped before the end), or a non-streamed body shorter than its Content-Length.

``force[model] = kind`` makes every request to that model fail that way (``None``: none).
Everything is counted: requests received per ``(request id, model)``, faults injected by kind,
clean answers.

>>> upstream = FaultyUpstream(rate=0.2, seed=7)  # doctest: +SKIP
>>> with serve(upstream) as url: ...  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FaultKind = Literal["http_500", "rate_limit_429", "stall", "reset", "truncated_json", "stream_dies"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "http_500",
    "rate_limit_429",
    "stall",
    "reset",
    "truncated_json",
    "stream_dies",
)
_REQUEST_ID = re.compile(r"\[req ([^\]\s]+)\]")


class FaultyUpstream:
    """The ASGI app. ``rate``, ``kinds`` and ``force`` may be changed while it serves."""

    def __init__(
        self,
        *,
        rate: float = 0.2,
        seed: int = 0,
        kinds: Iterable[FaultKind] = FAULT_KINDS,
        retry_after: str = "1",
        stall_s: float = 30.0,
    ) -> None:
        self.rate = rate
        self.seed = seed
        self.kinds: tuple[FaultKind, ...] = tuple(kinds)
        self.retry_after = retry_after
        self.stall_s = stall_s
        self.force: dict[str, FaultKind | None] = {}
        self.received: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[str] = Counter()
        self.answered = 0
        self._anonymous = 0

    # --- what happened -------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return sum(self.received.values())

    def received_for(self, request_id: str) -> dict[str, int]:
        """How many times each model was asked for one request."""
        return {model: n for (rid, model), n in self.received.items() if rid == request_id}

    def reset_counts(self) -> None:
        self.received.clear()
        self.injected.clear()
        self.answered = 0

    def fault_for(self, request_id: str, model: str, n: int) -> FaultKind | None:
        forced = self.force.get(model)
        if forced is not None or model in self.force:
            return forced
        draw = random.Random(f"{self.seed}:{request_id}:{model}:{n}")
        if not self.kinds or draw.random() >= self.rate:
            return None
        return draw.choice(self.kinds)

    # --- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                if kind == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif kind == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await _json(send, 404, {"error": {"message": f"no route {scope['path']}"}})
            return
        body = await _body(receive)
        try:
            request = json.loads(body)
            model = str(request["model"])
            last = str(request["messages"][-1]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            await _json(send, 400, {"error": {"message": "send a chat completion request"}})
            return
        found = _REQUEST_ID.search(last)
        if found is None:
            self._anonymous += 1
            request_id = f"anonymous-{self._anonymous}"
        else:
            request_id = found.group(1)
        self.received[(request_id, model)] += 1
        n = self.received[(request_id, model)]
        stream = bool(request.get("stream"))
        fault = self.fault_for(request_id, model, n)
        text = f"echo: {last}"
        if fault is not None:
            self.injected[fault] += 1
        if fault == "http_500":
            await _json(send, 500, {"error": {"message": "injected: internal error"}})
        elif fault == "rate_limit_429":
            headers = [(b"retry-after", self.retry_after.encode())]
            await _json(send, 429, {"error": {"message": "injected: slow down"}}, headers)
        elif fault == "stall":
            try:
                await asyncio.wait_for(_disconnected(receive), self.stall_s)
            except TimeoutError:
                await self._answer(send, model, text, stream, None)
        elif fault == "reset":
            await _drop(receive, reset=True)
        elif fault == "truncated_json":
            await self._answer(send, model, text, stream, "truncated")
        elif fault == "stream_dies":
            cut = random.Random(f"{self.seed}:{request_id}:{model}:{n}:cut")
            await self._answer(
                send, model, text, stream, "dies", receive=receive, dies_after=cut.random()
            )
        else:
            self.answered += 1
            await self._answer(send, model, text, stream, None)

    async def _answer(
        self,
        send: Send,
        model: str,
        text: str,
        stream: bool,
        breakage: Literal["truncated", "dies"] | None,
        *,
        receive: Receive | None = None,
        dies_after: float = 0.0,
    ) -> None:
        words = text.split(" ")
        usage = {"prompt_tokens": len(words), "completion_tokens": len(words)}
        usage["total_tokens"] = 2 * len(words)
        if not stream:
            payload = json.dumps(_completion(model, text, usage)).encode()
            if breakage == "truncated":
                await _raw(send, 200, payload[: len(payload) // 2])
            elif breakage == "dies":
                assert receive is not None
                await send(_start(200, [(b"content-length", str(len(payload)).encode())]))
                await send(_more(payload[: len(payload) // 2]))
                await _drop(receive, reset=False)
            else:
                await _raw(send, 200, payload)
            return
        await send(_start(200, [(b"cache-control", b"no-cache")], b"text/event-stream"))
        sent_words = int(dies_after * len(words))  # 0 .. len(words) - 1
        for index, word in enumerate(words):
            if breakage == "dies" and index == sent_words:
                assert receive is not None
                await _drop(receive, reset=False)
                return
            piece = word if index == 0 else f" {word}"
            event = _sse(_chunk(model, [{"index": 0, "delta": {"content": piece}}], None))
            if breakage == "truncated" and index == len(words) // 2:
                await send(_more(event[: len(event) // 2] + b"\n\n"))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(_more(event))
        finish = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        await send(_more(_sse(_chunk(model, finish, None))))
        await send(_more(_sse(_chunk(model, [], usage))))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _drop(receive: Receive, *, reset: bool) -> None:
    """Close the client's connection now, without finishing the response: with ``reset`` an
    RST (SO_LINGER 0), else a plain close. Reaches uvicorn's transport through ``receive``
    (a bound method of its request cycle); fails loudly on a server that hides it."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("the ASGI server does not expose its transport (uvicorn's h11 does)")
    if reset:
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.wait_for(_disconnected(receive), 5)  # uvicorn sees the loss: no 500 sent


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _start(
    status: int, headers: list[tuple[bytes, bytes]], media: bytes = b"application/json"
) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", media), *headers],
    }


def _more(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _raw(send: Send, status: int, body: bytes) -> None:
    await send(_start(status, [(b"content-length", str(len(body)).encode())]))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    extra = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send(_start(status, extra))
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _completion(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _chunk(model: str, choices: list[Any], usage: dict[str, int] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"finish_reason": None, **choice} for choice in choices],
        "usage": usage,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"
