"""The lean connection pool under OpenAIChatExpert's plain chat calls
(skillswitch.agents._http): what it sends, how it reuses connections, and the answers it must
read as an HTTP/1.1 client would, against a raw asyncio server that answers canned bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from skillswitch.agents import ExpertReply, Message, OpenAIChatExpert, TextDelta
from skillswitch.agents._http import EventStream
from skillswitch.exceptions import (
    ExpertResponseError,
    ExpertTimeoutError,
    ExpertUnavailableError,
)

pytestmark = pytest.mark.anyio
ASK = [Message("user", "hi")]
COMPLETION = json.dumps(
    {
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
).encode()


def ok(body: bytes, *, headers: bytes = b"content-type: application/json\r\n") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%scontent-length: %d\r\n\r\n%s" % (headers, len(body), body)


def sse(*events: bytes) -> bytes:
    body = b"".join(b"data: %s\n\n" % event for event in events)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:7], body[7:]))
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    )


class Canned:
    """A server that answers each request with ``answer(request head, body)`` bytes (None:
    close the connection), counting connections."""

    def __init__(self, answer: Callable[[bytes, bytes], bytes | None]) -> None:
        self.answer = answer
        self.url = ""
        self.connections = 0
        self.heads: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.heads.append(head)
                reply = self.answer(head, body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def canned(
    answer: Callable[[bytes, bytes], bytes | None], **settings: Any
) -> AsyncIterator[tuple[Canned, OpenAIChatExpert]]:
    """The server, and an expert in front of it (closed at the end)."""
    server = Canned(answer)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/v1"
    async with listening, OpenAIChatExpert("e", server.url, "m", **settings) as expert:
        yield server, expert


async def test_sequential_calls_share_one_connection_and_send_the_sdk_headers() -> None:
    key = "sk-test-123456789"
    async with canned(lambda head, body: ok(COMPLETION), api_key=key) as (server, expert):
        for _ in range(3):
            assert (await expert.answer(ASK)).text == "hello"
    assert server.connections == 1
    head = server.heads[0].lower()
    assert head.startswith(b"post /v1/chat/completions http/1.1\r\n")
    assert b"authorization: bearer sk-test-123456789\r\n" in head
    assert b"user-agent: asyncopenai/python" in head
    assert b"content-type: application/json\r\n" in head


async def test_a_body_that_ends_with_the_connection_is_read_whole() -> None:
    """No Content-Length, not chunked: the body is all that comes before the close."""

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + COMPLETION)
        writer.close()

    listening = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening, OpenAIChatExpert("e", f"http://127.0.0.1:{port}/v1", "m") as expert:
        assert (await expert.answer(ASK)).text == "hello"


async def test_a_kept_alive_connection_closed_as_it_is_reused_is_retried_once_fresh() -> None:
    """Found by the load test: a server's keep-alive timeout may close an idle connection just
    as the pool reuses it; the request fails before a byte of answer. It goes once more, on a
    new connection; a new connection that fails so is an error (the server is not answering)."""
    served: list[int] = []

    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        served.append(1)
        writer.write(ok(COMPLETION))  # keep-alive, as HTTP/1.1 answers are by default
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reader.readuntil(b"\r\n\r\n")  # the next request: closed unanswered
        writer.close()

    listening = await asyncio.start_server(one_per_connection, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening, OpenAIChatExpert("e", f"http://127.0.0.1:{port}/v1", "m") as expert:
        for _ in range(3):
            assert (await expert.answer(ASK)).text == "hello"
    assert len(served) == 3

    async with canned(lambda head, body: None) as (server, silent):
        with pytest.raises(ExpertUnavailableError, match="broke before"):
            await silent.answer(ASK)
    assert server.connections == 1  # a new connection's failure is not retried


async def test_a_stream_reads_its_events_and_keeps_the_connection() -> None:
    events = [
        b'{"model":"m","choices":[{"index":0,"delta":{"content":"hel"}}]}',
        b'{"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}',
        b'{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        b"[DONE]",
    ]
    async with canned(lambda head, body: sse(*events)) as (server, expert):
        for _ in range(2):
            got = [event async for event in expert.stream(ASK)]
            assert [e.text for e in got if isinstance(e, TextDelta)] == ["hel", "lo"]
            assert isinstance(got[-1], ExpertReply)
            assert got[-1].usage.completion_tokens == 2
    assert server.connections == 1


async def test_an_error_event_in_a_stream_is_the_experts_error() -> None:
    error = b'{"error":{"message":"the model is overloaded","type":"server_error"}}'
    async with canned(lambda head, body: sse(error, b"[DONE]")) as (_server, expert):
        with pytest.raises(ExpertResponseError, match="the model is overloaded"):
            async for _ in expert.stream(ASK):
                pass


async def test_a_redirect_is_followed_by_the_sdk() -> None:
    def answer(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"POST /v1/"):
            return (
                b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /v2/chat/completions\r\n"
                b"content-length: 0\r\n\r\n"
            )
        return ok(COMPLETION)

    async with canned(answer) as (server, expert):
        assert (await expert.answer(ASK)).text == "hello"
    assert [h.split(b" ")[1] for h in server.heads][-1] == b"/v2/chat/completions"


async def test_a_proxied_endpoint_goes_through_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's client honours *_proxy; the lean pool does not, so it stands aside."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    expert = OpenAIChatExpert("e", "http://example.invalid/v1", "m")
    assert expert._link().pool is None
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    await expert.aclose()
    assert expert._link().pool is not None
    await expert.aclose()


async def test_a_response_slower_than_the_timeout_is_a_timeout() -> None:
    def never(head: bytes, body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 999\r\n\r\n"

    async with canned(never, timeout_s=0.2) as (_server, expert):
        with pytest.raises(ExpertTimeoutError):
            await expert.answer(ASK)


def test_event_stream_joins_pieces_split_anywhere() -> None:
    body = b': comment\r\nevent: x\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: [DONE]\n\n'
    for cut in range(len(body)):
        events = EventStream()
        got = events.feed(body[:cut]) + events.feed(body[cut:])
        assert got == [b'{"a":\n1}', b"[DONE]"]
