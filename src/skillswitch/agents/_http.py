"""A lean HTTP/1.1 client for the hot path of OpenAI-compatible experts: keep-alive connections
on asyncio protocols, responses parsed by httptools (the parser uvicorn uses; a dependency).

Why it exists: with routing bypassed, ``skillswitch serve`` is a gateway, and a gateway's cost
per request is mostly its upstream client. Profiled with py-spy (benchmarks/http_overhead.py,
2026-11-23), the openai SDK's request machinery and its httpx2/httpcore2 stack were ~46% of the
server's CPU per request (URL parsing, header merging, two socket writes per request, anyio
cancel scopes per read). One exchange here is one write and a parser fed by the event loop.

What it keeps of the SDK's client: per-read timeouts (``timeout_s``, as httpx's read timeout),
a pool per event loop of at most ``max_connections`` connections (waits beyond it count against
the timeout), ``max_idle`` kept alive, TLS with httpx2's certificate context, and failures in
three kinds the expert maps to its errors: the endpoint never reached (``connect``), the
connection broken before the answer was complete (``broken``), no data within the timeout
(``timeout``). Proxies and redirects are not handled here: the expert sends those requests
through the SDK.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
import urllib.parse
from typing import Literal, cast

import httptools

__all__ = ["ConnectionPool", "EventStream", "HTTPFailure", "Response", "proxied"]

FailureKind = Literal["connect", "broken", "timeout"]
_EOF = "peer closed connection without sending complete message body"
_HIGH_WATER = 2**20  # bytes of body buffered before the socket is paused (a slow consumer)


class HTTPFailure(Exception):
    """An exchange that failed: ``kind`` says how, the message says why."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        self.kind = kind
        super().__init__(detail)


@functools.cache
def _tls() -> ssl.SSLContext:
    import httpx2

    return httpx2.create_ssl_context()


class Response(asyncio.Protocol):
    """One connection, and the response being read on it (``status``, ``headers`` with
    lower-cased names, then the body through ``read`` or ``next_chunk``). Hand it back with
    ``ConnectionPool.release`` when done, read in full or not."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.closed_cleanly = False
        self.idle = False
        self.requests = 0
        """Requests sent on this connection (0: new, never used)."""
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.head = False
        self.complete = False
        self.reusable = False
        self.failure: HTTPFailure | None = None
        self.received = False
        """Whether any byte of this response has arrived."""
        self._body: list[bytes] = []
        self._buffered = 0

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"the response is not valid HTTP/1.1 ({exc})")
            self.close()
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport: this side has nothing more to say either

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.closed_cleanly = exc is None  # the peer's FIN, not a reset
        if self.idle:
            self._pool.forget(self)
        elif self.head and not self.complete and not self._framed():
            self.complete = True  # neither a length nor chunks: the body ends with the connection
        elif not self.complete:
            self._fail(str(exc) if exc is not None and str(exc) else _EOF)
        self._wake()

    # --- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.head = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.reusable = self._parser.should_keep_alive()

    # --- reading

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            self._raise_failure()
            await self._wait()
        body = b"".join(self._body)
        self._body.clear()
        return body

    async def next_chunk(self) -> bytes | None:
        """The body received since the last call (waiting for some); None at its end. Data
        that arrived before a failure is returned before the failure is raised."""
        while not self._body:
            if self.complete:
                return None
            self._raise_failure()
            await self._wait()
        data = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- internals

    def _framed(self) -> bool:
        return b"content-length" in self.headers or b"transfer-encoding" in self.headers

    def _fail(self, detail: str) -> None:
        if self.failure is None:
            self.failure = HTTPFailure("broken", detail)

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.lost:
            raise HTTPFailure("broken", _EOF)

    async def _head(self) -> None:
        while not self.head:
            self._raise_failure()
            await self._wait()

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(self._pool.timeout_s, _expire, waiter, self._pool.timeout_s)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(HTTPFailure("timeout", f"no data within {timeout_s:g} s"))


class ConnectionPool:
    """Keep-alive connections to one origin, for the event loop that made the pool.

    >>> pool = ConnectionPool("http://127.0.0.1:8000/v1", {}, timeout_s=60)  # doctest: +SKIP
    >>> response = await pool.post("/chat/completions", b"{...}")  # doctest: +SKIP
    >>> body = await response.read(); pool.release(response)  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float,
        max_connections: int = 1000,
        max_idle: int = 100,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{base_url!r} is not an http(s) URL")
        self.loop = asyncio.get_running_loop()
        self.timeout_s = timeout_s
        self._host = url.hostname
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/").encode()
        lines = [f"Host: {url.netloc.rpartition('@')[2]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._idle: list[Response] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def post(self, path: str, body: bytes) -> Response:
        """Send ``body`` to the base URL's path + ``path``; the response once its head is in.

        A kept-alive connection the server closes as it is reused (its idle timeout ending
        just then: a clean close, before a byte of the answer) gets the request once more, on
        a new connection, as every HTTP client's pool does. Any other failure (a reset, a
        failure after the answer began, a new connection's) is the caller's, whose retries
        count it."""
        response = await self._acquire()
        fresh = response.requests == 0
        try:
            return await self._send(response, path, body)
        except HTTPFailure as failure:
            if fresh or failure.kind != "broken" or response.received:
                raise
            if not response.closed_cleanly:
                raise  # a reset: the server refused this request, it was not a timeout's close
        return await self._send(await self._acquire(fresh=True), path, body)

    async def _send(self, response: Response, path: str, body: bytes) -> Response:
        response._begin()
        response.requests += 1
        assert response.transport is not None
        response.transport.write(
            b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (self._prefix, path.encode(), self._head, len(body), body)
        )
        try:
            await response._head()
        except BaseException:
            self.release(response)
            raise
        return response

    def release(self, response: Response) -> None:
        """Back to the pool when its answer was read in full and it may be reused; else
        closed (a response cut short leaves the connection mid-message)."""
        keep = (
            response.complete
            and response.reusable
            and not response.lost
            and not self._closed
            and len(self._idle) < self._max_idle
        )
        if keep:
            response.idle = True
            self._idle.append(response)
        else:
            response.close()
            self._open -= 1
        self._notify()

    def forget(self, response: Response) -> None:
        """An idle connection the server closed."""
        if response in self._idle:
            self._idle.remove(response)
            self._open -= 1
            self._notify()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for response in idle:
            response.idle = False
            response.close()
            self._open -= 1

    async def _acquire(self, *, fresh: bool = False) -> Response:
        while self._idle and not fresh:
            response = self._idle.pop()
            response.idle = False
            transport = response.transport
            if not response.lost and transport is not None and not transport.is_closing():
                return response
            response.close()
            self._open -= 1
        while self._open >= self._max_connections:
            await self._slot()
            if self._idle and not fresh:
                return await self._acquire()
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._notify()
            raise

    async def _slot(self) -> None:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout_s):
                await waiter
        except TimeoutError:
            raise HTTPFailure(
                "timeout", f"no connection free within {self.timeout_s:g} s"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _notify(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self) -> Response:
        try:
            async with asyncio.timeout(self.timeout_s):
                _, response = await self.loop.create_connection(
                    lambda: Response(self),
                    self._host,
                    self._port,
                    ssl=_tls() if self._tls else None,
                    server_hostname=self._host if self._tls else None,
                )
        except TimeoutError:
            raise HTTPFailure("timeout", f"no connection within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise HTTPFailure("connect", str(exc) or type(exc).__name__) from exc
        return response


class EventStream:
    """The data of server-sent events, from a body that arrives in pieces split anywhere
    (comments, ``event:`` and ``id:`` lines are skipped; an event's data lines join by
    newlines)."""

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of the events that ``chunk`` completes."""
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        events = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
        return events


def proxied(base_url: str) -> bool:
    """Whether the environment sends requests to ``base_url`` through a proxy (``*_proxy`` and
    ``no_proxy``, as httpx reads them for the SDK's client)."""
    import urllib.request

    url = urllib.parse.urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    bypass: bool = urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
        url.hostname or "", proxies
    )
    return not bypass
