"""An expert behind any OpenAI-compatible ``/v1/chat/completions`` endpoint (official SDK)."""

from __future__ import annotations

import asyncio
import email.utils
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:  # the SDK costs ~0.4 s to import: only experts that are used pay for it
    import openai
    from openai import Omit
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall, offered_client_tools
from skillswitch.agents.messages import Message, Prices, TextDelta
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
class SamplingSettings:
    """Generation parameters sent with every call (None: the endpoint's default)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


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
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]
        self._clients = weakref.WeakKeyDictionary()

    @property
    def name(self) -> str:
        return self._name

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The running loop's client, made on first use there (and again after aclose)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import openai

            client = openai.AsyncOpenAI(
                base_url=self._base_url,
                api_key=self._api_key or "no-key",  # the SDK insists; local endpoints ignore it
                timeout=self._timeout_s,
                max_retries=0,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this loop's HTTP connections (the expert stays usable; it reconnects on
        demand). Clients of loops that have closed are dropped; other loops close their own."""
        for loop in [loop for loop in self._clients if loop.is_closed()]:
            del self._clients[loop]
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def __aenter__(self) -> OpenAIChatExpert:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _complete(
        self, messages: Sequence[ChatCompletionMessageParam], **extra: Any
    ) -> ChatCompletion:
        """One non-streaming completion with this expert's sampling; errors mapped."""
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=list(messages),
                temperature=_given(self._sampling.temperature),
                top_p=_given(self._sampling.top_p),
                max_tokens=_given(self._sampling.max_tokens),
                seed=_given(self._sampling.seed),
                **extra,
            )
        except Exception as exc:  # mapped below; anything unknown is re-raised
            raise self._error(exc) from exc
        return cast("ChatCompletion", completion)

    def _body(self, messages: Sequence[Message], **extra: Any) -> dict[str, Any]:
        """The request body: this expert's model and sampling (unset fields left out), the
        conversation, the caller's tools when it offered any."""
        body: dict[str, Any] = {"model": self._model, "messages": _openai_messages(messages)}
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self._sampling, name)
            if value is not None:
                body[name] = value
        body.update(_client_tool_options())
        body.update(extra)
        return body

    async def _post(self, body: dict[str, Any], *, stream: bool = False) -> Any:
        """``POST /chat/completions`` through the SDK's client (its transport, auth, timeouts
        and error types) with the body as built and the answer as plain JSON: the hot path
        skips the SDK's parameter transforms and response models (about a fifth of a
        gateway's CPU per request, measured in benchmarks/http_overhead.py)."""
        from openai import AsyncStream

        return await self._client.post(
            "/chat/completions",
            cast_to=object,
            body=body,
            stream=stream,
            stream_cls=AsyncStream[object],
        )

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        try:
            completion = await self._post(self._body(messages))
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
        try:
            chunks = await self._post(body, stream=True)
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
