"""A real OpenAI-compatible ``/v1/chat/completions`` upstream for tests, told how to misbehave by
the model name: ``echo`` answers; ``fail-<status>``; ``rate-limit`` (429 + Retry-After: 2);
``stall`` (never answers in time); ``malformed`` (not JSON); ``empty`` (empty content);
``drop-stream`` (a stream that dies midway). Tool use: ``tool-caller`` calls ``calculator`` on
the user's text, then answers with the result; ``tool-looper`` calls tools until told
``tool_choice: none``; ``tool-unknown`` / ``tool-bad-json`` make a broken call, then answer with
what the tool message said; ``tool-directed`` calls the tool the user names as
``[[name {json arguments}]]`` and answers with the tools it was offered and the result."""

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
        if model.startswith("tool-"):
            tool_reply = _tool_behaviour(model, body)
            if isinstance(tool_reply, dict):
                return JSONResponse(_completion(model, tool_reply, "tool_calls", _usage(body, "")))
            text = tool_reply
        else:
            text = "" if model == "empty" else f"echo: {last}"
        prompt_tokens = sum(len((m.get("content") or "").split()) for m in body["messages"])
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


def _tool_behaviour(model: str, body: dict[str, Any]) -> dict[str, Any] | str:
    """An assistant message with tool calls, or the final text."""
    messages = body["messages"]
    observed = [m["content"] for m in messages if m["role"] == "tool"]
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    tools_off = body.get("tool_choice") == "none" or not body.get("tools")
    if model == "tool-looper":
        if tools_off:
            return f"gave up after {len(observed)} tool results"
        return _calls(("calculator", json.dumps({"expression": f"{len(observed)} + 1"})))
    if model == "tool-directed":  # calls what the user names: "... [[tool {json args}]]"
        offered = sorted(t["function"]["name"] for t in body.get("tools") or [])
        if observed or tools_off:
            return f"offered {offered}; the tool said: {observed[-1] if observed else None}"
        name, _, arguments = user.partition("[[")[2].partition("]]")[0].partition(" ")
        return _calls((name, arguments or "{}"))
    if observed or tools_off:
        return f"The result is {observed[-1]}" if model == "tool-caller" else f"saw: {observed}"
    if model == "tool-caller":
        return _calls(("calculator", json.dumps({"expression": user})))
    if model == "tool-unknown":
        return _calls(("teleport", "{}"))
    if model == "tool-bad-json":
        return _calls(("calculator", "{not json"))
    return _calls(("calculator", json.dumps({"expression": user})), ("clock", "{}"))


def _calls(*calls: tuple[str, str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ],
    }


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len((m.get("content") or "").split()) for m in body["messages"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(text.split()),
        "total_tokens": prompt + len(text.split()),
    }


def _completion(
    model: str, message: dict[str, Any], finish: str, usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


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
