"""A real OpenAI-compatible ``/v1/chat/completions`` upstream for tests, told how to misbehave by
the model name: ``echo`` answers; ``fail-<status>``; ``rate-limit`` (429 + Retry-After: 2);
``stall`` (never answers in time); ``malformed`` (not JSON); ``empty`` (empty content);
``drop-stream`` (a stream that dies midway)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse


def chat_app() -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append(body)
        model = body["model"]
        last = body["messages"][-1]["content"]
        if model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=status)
        if model == "rate-limit":
            return JSONResponse(
                {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "2"}
            )
        if model == "stall":
            await asyncio.sleep(10)
        if model == "malformed":
            return PlainTextResponse("{not json", media_type="application/json")
        text = "" if model == "empty" else f"echo: {last}"
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        }
        if body.get("stream"):
            return StreamingResponse(_stream(model, text, usage), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-test",
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
        )

    return app


async def _stream(model: str, text: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
    words = text.split(" ")
    for index, word in enumerate(words):
        if model == "drop-stream" and index == 2:
            raise ConnectionResetError("injected: the stream dies midway")
        piece = word if index == 0 else f" {word}"
        yield _event(model, {"content": piece}, None)
    yield _event(model, {}, "stop")
    yield b"data: " + json.dumps(_chunk(model, [], usage)).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _event(model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps(_chunk(model, choices, None)).encode() + b"\n\n"


def _chunk(model: str, choices: list[Any], usage: dict[str, int] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }
