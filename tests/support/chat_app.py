"""A real OpenAI-compatible ``/v1/chat/completions`` upstream for tests, told how to misbehave by
the model name: ``echo`` answers; ``fail-<status>``; ``rate-limit`` (429 + Retry-After: 2);
``stall`` (never answers in time); ``slow-<ms>`` (echo after that long); ``malformed`` (not
JSON); ``empty`` (empty content); ``drop-stream`` (a stream that dies midway); ``auth-echo``
(401 quoting the key it was sent). Tool use: ``tool-caller`` calls ``calculator`` on
the user's text, then answers with the result; ``tool-looper`` calls tools until told
``tool_choice: none``; ``tool-unknown`` / ``tool-bad-json`` make a broken call, then answer with
what the tool message said; ``tool-directed`` calls the tool the user names as
``[[name {json arguments}]]`` and answers with the tools it was offered and the result.
Asked for JSON (``response_format`` ``json_object`` or ``json_schema``), a model that would
echo answers ``{"echo": <last message>}`` instead.
``client-tools`` plays a model offered the caller's tools, streamed or not: it calls the
function ``tool_choice`` names, else the tool the user names as ``[[name {json arguments}]]``,
else the first tool offered; once a tool message is there it answers ``offered [...]; the tool
said: <result>``."""

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
        if model == "client-tools":
            return _client_tools(body)
        if model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=status)
        if model == "auth-echo":  # an error page that quotes the key it was sent
            sent = request.headers.get("authorization", "")
            return JSONResponse({"error": {"message": f"invalid key: {sent}"}}, status_code=401)
        if model == "rate-limit":
            return JSONResponse(
                {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "2"}
            )
        if model == "stall":
            await asyncio.sleep(10)
        if model.startswith("slow-"):  # answers like echo after <ms> milliseconds
            await asyncio.sleep(int(model.removeprefix("slow-")) / 1000)
        if model == "malformed":
            return PlainTextResponse("{not json", media_type="application/json")
        if model.startswith("tool-"):
            tool_reply = _tool_behaviour(model, body)
            if isinstance(tool_reply, dict):
                return JSONResponse(_completion(model, tool_reply, "tool_calls", _usage(body, "")))
            text = tool_reply
        elif body.get("response_format", {}).get("type") in ("json_object", "json_schema"):
            text = json.dumps({"echo": last})  # an endpoint that keeps JSON mode
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


def _client_tools(body: dict[str, Any]) -> Response:
    messages = body["messages"]
    offered = [t["function"]["name"] for t in body.get("tools") or []]
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    choice = body.get("tool_choice")
    if messages[-1]["role"] == "tool" or not offered or choice == "none":
        said = messages[-1]["content"] if messages[-1]["role"] == "tool" else None
        text = f"offered {offered}; the tool said: {said}"
        if body.get("stream"):
            usage = _usage(body, text)
            stream = _stream("client-tools", text, usage)
            return StreamingResponse(stream, media_type="text/event-stream")
        return JSONResponse(_completion("client-tools", _text(text), "stop", _usage(body, text)))
    named, _, arguments = user.partition("[[")[2].partition("]]")[0].partition(" ")
    if isinstance(choice, dict):
        name = choice["function"]["name"]
    else:
        name = named if named in offered else offered[0]
    arguments = arguments or "{}"
    if not body.get("stream"):
        message = _calls((name, arguments))
        return JSONResponse(_completion("client-tools", message, "tool_calls", _usage(body, "")))
    call = _streamed_call(name, arguments, _usage(body, ""))
    return StreamingResponse(call, media_type="text/event-stream")


async def _streamed_call(name: str, arguments: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
    """A tool call as OpenAI streams it: id and name first, then the arguments in pieces."""
    head = {"index": 0, "id": "call_0", "type": "function", "function": {"name": name}}
    yield _event("client-tools", {"role": "assistant", "tool_calls": [head]}, None)
    half = len(arguments) // 2
    for piece in (arguments[:half], arguments[half:]):
        yield _event(
            "client-tools", {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None
        )
    yield _event("client-tools", {}, "tool_calls")
    yield b"data: " + json.dumps(_chunk("client-tools", [], usage)).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _text(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


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
