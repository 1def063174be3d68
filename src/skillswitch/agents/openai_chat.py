"""An expert behind any OpenAI-compatible ``/v1/chat/completions`` endpoint (official SDK).

The expert is built over the openai SDK: each event loop gets its ``openai.AsyncOpenAI``
client, whose settings (base URL, key and the headers it sends, timeout) every call uses, and
whose typed path the tool loop (``ToolCallingExpert``) calls. The plain chat call, streamed or
not, goes out through a lean keep-alive connection pool built from that client's settings
(``skillswitch.agents._http``) rather than the SDK's request machinery: profiled in
benchmarks/http_overhead.py (py-spy, routing bypassed, 2026-11-23), the SDK's request
building and its httpx2/httpcore2 transport were ~46% of the gateway's CPU per request, more
than everything else it did. The SDK still carries the requests the pool does not handle:
through a proxy (``*_proxy`` in the environment), redirects, credentials other than a key.
Either way the errors are the same: timeouts, connections never made or broken midway,
error statuses (with Retry-After), streams that die before they finish.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson

if TYPE_CHECKING:  # the SDK costs ~0.4 s to import: only experts that are used pay for it
    import openai
    from openai import Omit
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from skillswitch.agents._http import ConnectionPool, EventStream, HTTPFailure, Response, proxied
from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall, offered_client_tools
from skillswitch.agents.messages import Message, Prices, TextDelta
from skillswitch.agents.sampling import SamplingSettings, requested_sampling
from skillswitch.exceptions import (
    ExpertError,
    ExpertHTTPError,
    ExpertResponseError,
    ExpertTimeoutError,
    ExpertUnavailableError,
)
from skillswitch.redaction import register_secret

__all__ = ["OpenAIChatExpert", "SamplingSettings"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Link:
    """One event loop's way to the endpoint: the SDK's client, and the lean pool built from
    its settings (None: every call goes through the SDK)."""

    sdk: openai.AsyncOpenAI
    pool: ConnectionPool | None


class OpenAIChatExpert:
    """Calls ``{base_url}/chat/completions`` with ``model``; every reply carries its cost.

    The SDK's own retries are off: retrying (with Retry-After, budgets and circuit breakers) is
    the dispatcher's job, so one ``answer`` is one HTTP attempt. The caller's tools of the
    request, if any, are offered to the model; the calls it asks for come back in the reply.

    >>> expert = OpenAIChatExpert("coder", "http://127.0.0.1:8000/v1", "qwen")  # doctest: +SKIP
    >>> reply = await expert.answer([Message("user", "hi")])  # doctest: +SKIP
    """

    calls_client_tools = True

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        sampling: SamplingSettings | None = None,
        prices: Prices | None = None,
    ) -> None:
        self._name = name
        register_secret(api_key)
        self._api_key = api_key
        self._model = model
        self._timeout_s = timeout_s
        self._sampling = sampling or SamplingSettings()
        self._prices = prices or Prices()
        self._base_url = base_url.rstrip("/")
        # One client per event loop: connections belong to the loop that opened them, so a
        # caller in another loop (a thread of its own, asyncio.run twice) gets its own.
        self._links: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Link]
        self._links = weakref.WeakKeyDictionary()

    @property
    def name(self) -> str:
        return self._name

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The running loop's SDK client, made on first use there (and again after aclose)."""
        return self._link().sdk

    def _link(self) -> _Link:
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None:
            import openai

            client = openai.AsyncOpenAI(
                base_url=self._base_url,
                api_key=self._api_key or "no-key",  # the SDK insists; local endpoints ignore it
                timeout=self._timeout_s,
                max_retries=0,
            )
            link = _Link(client, self._pool(client))
            self._links[loop] = link
        return link

    def _pool(self, client: openai.AsyncOpenAI) -> ConnectionPool | None:
        """A lean pool that sends what the SDK's client would (its headers, its key), or None
        where only the SDK knows how (a proxy, credentials that are not a plain key)."""
        if proxied(self._base_url):
            return None
        auth = client.auth_headers
        if not auth:
            return None
        headers = {**client.default_headers, **auth}
        sent = {name: value for name, value in headers.items() if isinstance(value, str)}
        return ConnectionPool(self._base_url, sent, timeout_s=self._timeout_s)

    def sampling(self) -> SamplingSettings:
        """The settings a call sends now: the request's (``requested_sampling()``) over this
        expert's own."""
        return requested_sampling().over(self._sampling)

    async def aclose(self) -> None:
        """Close this loop's HTTP connections (the expert stays usable; it reconnects on
        demand). Clients of loops that have closed are dropped; other loops close their own."""
        for loop in [loop for loop in self._links if loop.is_closed()]:
            del self._links[loop]
        link = self._links.pop(asyncio.get_running_loop(), None)
        if link is not None:
            if link.pool is not None:
                await link.pool.aclose()
            await link.sdk.close()

    async def __aenter__(self) -> OpenAIChatExpert:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _complete(
        self, messages: Sequence[ChatCompletionMessageParam], **extra: Any
    ) -> ChatCompletion:
        """One non-streaming completion with the request's sampling over this expert's; errors
        mapped."""
        sampling = self.sampling()
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=list(messages),
                temperature=_given(sampling.temperature),
                top_p=_given(sampling.top_p),
                max_tokens=_given(sampling.max_tokens),
                seed=_given(sampling.seed),
                stop=_given(None if sampling.stop is None else list(sampling.stop)),
                response_format=_given(sampling.given().get("response_format")),
                **extra,
            )
        except Exception as exc:  # mapped below; anything unknown is re-raised
            raise self._error(exc) from exc
        return cast("ChatCompletion", completion)

    def _body(self, messages: Sequence[Message], **extra: Any) -> dict[str, Any]:
        """The request body: this expert's model, the request's sampling over this expert's
        (unset fields left out), the conversation, the caller's tools when it offered any."""
        body: dict[str, Any] = {"model": self._model, "messages": _openai_messages(messages)}
        body.update(self.sampling().given())
        body.update(_client_tool_options())
        body.update(extra)
        return body

    async def _post(self, body: dict[str, Any], *, stream: bool = False) -> Any:
        """``POST /chat/completions`` through the SDK's client (its transport, auth, timeouts
        and error types) with the body as built and the answer as plain JSON: no parameter
        transforms or response models. For what the lean pool does not handle."""
        from openai import AsyncStream

        return await self._client.post(
            "/chat/completions",
            cast_to=object,
            body=body,
            stream=stream,
            stream_cls=AsyncStream[object],
        )

    async def _completion(self, body: dict[str, Any]) -> Any:
        """The answer to ``body`` as plain JSON, through the lean pool when there is one."""
        pool = self._link().pool
        if pool is None:
            return await self._post(body)
        response = await self._send(pool, body)
        if response is None:
            return await self._post(body)
        try:
            data = await response.read()
        except HTTPFailure as exc:
            raise self._failed(exc) from None
        finally:
            pool.release(response)
        kind = response.headers.get(b"content-type", b"").partition(b";")[0].strip()
        if not kind.endswith(b"json"):
            raise ValueError(f"the response is not JSON (content-type {kind.decode('latin-1')!r})")
        return orjson.loads(data)

    async def _chunks(self, body: dict[str, Any]) -> AsyncGenerator[Any]:
        """The events of the streamed answer to ``body`` as plain JSON, through the lean pool
        when there is one; an error event is the expert's error."""
        pool = self._link().pool
        response = None if pool is None else await self._send(pool, body)
        if pool is None or response is None:
            async for chunk in await self._post(body, stream=True):
                yield chunk
            return
        events = EventStream()
        try:
            while (data := await response.next_chunk()) is not None:
                for event in events.feed(data):
                    if event.startswith(b"[DONE]"):
                        while await response.next_chunk() is not None:
                            pass  # the rest of the body: the connection is reused after it
                        return
                    chunk = orjson.loads(event)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise ExpertResponseError(
                            self._name, f"the stream reported an error: {_error_message(chunk)}"
                        )
                    yield chunk
        except HTTPFailure as exc:
            raise self._failed(exc) from None
        finally:
            pool.release(response)

    async def _send(self, pool: ConnectionPool, body: dict[str, Any]) -> Response | None:
        """The response to ``body`` once its head is in (a success); an error status is the
        expert's ``ExpertHTTPError``; None for a redirect (the SDK's client follows it)."""
        try:
            response = await pool.post("/chat/completions", orjson.dumps(body))
        except HTTPFailure as exc:
            raise self._failed(exc) from None
        if response.status < 300:
            return response
        try:
            text = (await response.read()).decode("utf-8", "replace")
        except HTTPFailure as exc:
            raise self._failed(exc) from None
        finally:
            pool.release(response)
        if response.status < 400:
            return None
        retry_after = response.headers.get(b"retry-after")
        raise ExpertHTTPError(
            self._name,
            response.status,
            text,
            retry_after_s=_retry_after(None if retry_after is None else retry_after.decode()),
        )

    def _failed(self, failure: HTTPFailure) -> ExpertError:
        if failure.kind == "timeout":
            return ExpertTimeoutError(self._name, self._timeout_s)
        if failure.kind == "connect":
            return ExpertUnavailableError(self._name, f"cannot reach {self._base_url}: {failure}")
        return ExpertUnavailableError(
            self._name,
            f"the connection to {self._base_url} broke before the answer was complete: {failure}",
        )

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        try:
            completion = await self._completion(self._body(messages))
            choice, message = _first_choice(completion)
            text = message.get("content") or ""
            calls = _calls(message.get("tool_calls"))
            usage = completion.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except ExpertError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:  # not OpenAI's shape
            raise ExpertResponseError(self._name, f"unusable response: {exc!r}") from exc
        except Exception as exc:  # mapped below; anything unknown is re-raised
            raise self._error(exc) from exc
        if not isinstance(text, str):
            raise ExpertResponseError(self._name, f"the reply's content is {type(text).__name__}")
        if not calls and not text.strip():
            raise ExpertResponseError(self._name, "the reply is empty")
        return ExpertReply(
            expert=self._name,
            text=text,
            usage=self._prices.usage(prompt_tokens, completion_tokens),
            model=completion.get("model") or self._model,
            finish_reason=choice.get("finish_reason"),
            latency_ms=(time.perf_counter() - started) * 1000,
            client_tool_calls=calls,
        )

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        started = time.perf_counter()
        parts: list[str] = []
        finish: str | None = None
        prompt_tokens = completion_tokens = 0
        model = self._model
        calls = _StreamedCalls()
        body = self._body(messages, stream=True, stream_options={"include_usage": True})
        chunks = self._chunks(body)
        try:
            async for chunk in chunks:
                if not isinstance(chunk, dict):
                    raise ValueError(f"a stream event is {type(chunk).__name__}, not an object")
                model = chunk.get("model") or model
                usage = chunk.get("usage")
                if usage:
                    prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    completion_tokens = int(usage.get("completion_tokens") or 0)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        parts.append(content)
                        yield TextDelta(content)
                    for piece in delta.get("tool_calls") or ():
                        calls.add(piece)
                    finish = choice.get("finish_reason") or finish
        except ExpertError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:  # not OpenAI's shape
            raise ExpertResponseError(self._name, f"unusable response: {exc!r}") from exc
        except Exception as exc:  # mapped below; anything unknown is re-raised
            raise self._error(exc) from exc
        finally:
            await chunks.aclose()  # now, in this task: its connection goes back or is closed
        if finish is None:
            raise ExpertResponseError(
                self._name, f"the stream ended before the answer finished ({len(parts)} parts)"
            )
        text = "".join(parts)
        requested = calls.complete(self._name)
        if not requested and not text.strip():
            raise ExpertResponseError(self._name, "the reply is empty")
        yield ExpertReply(
            expert=self._name,
            text=text,
            usage=self._prices.usage(prompt_tokens, completion_tokens),
            model=model,
            finish_reason=finish,
            latency_ms=(time.perf_counter() - started) * 1000,
            client_tool_calls=requested,
        )

    def _error(self, exc: Exception) -> Exception:
        import httpx2
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return ExpertTimeoutError(self._name, self._timeout_s)
        if isinstance(exc, openai.APIStatusError):
            return ExpertHTTPError(
                self._name,
                exc.status_code,
                exc.response.text,
                retry_after_s=_retry_after(exc.response.headers.get("retry-after")),
            )
        if isinstance(exc, openai.APIConnectionError):  # its cause says what happened
            return ExpertUnavailableError(self._name, self._broken(exc.__cause__ or exc))
        if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
            return ExpertResponseError(self._name, f"unusable response: {exc}")
        if isinstance(exc, httpx2.HTTPError):  # e.g. the connection dropped mid-stream
            return ExpertUnavailableError(self._name, self._broken(exc))
        return exc

    def _broken(self, cause: BaseException) -> str:
        """A failed connection in words: never made, or broken before the answer was complete
        (reset, closed midway); the SDK's own message is only "Connection error."."""
        import httpx2

        detail = type(cause).__name__
        inner: BaseException | None = cause
        for _ in range(8):  # httpx2's errors may be empty; the OSError they wrap is not
            if inner is None or str(inner):
                detail = str(inner or detail)
                break
            inner = inner.__cause__ or inner.__context__
        if isinstance(cause, (httpx2.ConnectError, httpx2.UnsupportedProtocol)):
            return f"cannot reach {self._base_url}: {detail}"
        return f"the connection to {self._base_url} broke before the answer was complete: {detail}"


def _error_message(event: Mapping[str, Any]) -> str:
    error = event.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) and message else "no message"


def _client_tool_options() -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of the caller's request, when it offered tools."""
    offered = offered_client_tools()
    if offered is None:
        return {}
    return {"tools": offered.to_openai(), "tool_choice": offered.choice.to_openai()}


class _StreamedCalls:
    """Tool calls assembled from stream deltas: the first piece of a call (by ``index``)
    carries its id and name, later pieces append to its arguments."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def add(self, piece: Mapping[str, Any]) -> None:
        call = self._calls.setdefault(int(piece.get("index") or 0), ["", "", ""])
        call[0] = piece.get("id") or call[0]
        function = piece.get("function") or {}
        call[1] = function.get("name") or call[1]
        call[2] += function.get("arguments") or ""

    def complete(self, expert: str) -> tuple[ClientToolCall, ...]:
        calls = []
        for index in sorted(self._calls):
            call_id, name, arguments = self._calls[index]
            if not call_id or not name:
                raise ExpertResponseError(
                    expert, f"the stream's tool call {index} has no id or no function name"
                )
            calls.append(ClientToolCall(call_id, name, arguments or "{}"))
        return tuple(calls)


def _first_choice(completion: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The first choice of a completion and its message; ValueError (an unusable response)
    when the shape is not OpenAI's."""
    if not isinstance(completion, dict):
        raise ValueError(f"the response is {type(completion).__name__}, not an object")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the response has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ValueError("the response's first choice has no message")
    return choice, message


def _calls(value: Any) -> tuple[ClientToolCall, ...]:
    """An assistant message's calls of functions (OpenAI's shape)."""
    if not value:
        return ()
    calls = []
    for call in value:
        if call.get("type", "function") != "function":
            continue
        function = call.get("function") or {}
        calls.append(
            ClientToolCall(
                str(call["id"]), str(function["name"]), function.get("arguments") or "{}"
            )
        )
    return tuple(calls)


def _openai_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    return [cast("ChatCompletionMessageParam", m.to_openai()) for m in messages]


def _given(value: T | None) -> T | Omit:
    """Unset parameters are left out of the request, not sent as null (some servers reject
    null)."""
    from openai import omit

    return omit if value is None else value


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
