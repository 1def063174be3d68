"""``POST /v1/chat/completions`` through the switch: routed by skill, pinned to a skill, or sent
to one expert by name; one choice, streamed or not, with the trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from skillswitch.agents.messages import TextDelta, Usage
from skillswitch.agents.sampling import SamplingSettings, parse_sampling
from skillswitch.exceptions import RequestError, SkillSwitchError
from skillswitch.router import RoutingDecision
from skillswitch.server.api.chat_completions.protocol import ChatCompletionRequest
from skillswitch.server.api.common import ignored, logger, switch_error, to_messages
from skillswitch.server.api.metrics.collectors import Metrics
from skillswitch.server.api.targets import NO_SKILL, Target, Targets
from skillswitch.server.openai_errors import OpenAIError
from skillswitch.server.wire import check_n, client_tools_of, new_id, now, sse
from skillswitch.trace import Answer, Routed, Selection

if TYPE_CHECKING:
    from skillswitch.switch import Switch

T = TypeVar("T")
_JSON = "application/json"

__all__ = [
    "ROUTE_HEADER",
    "AnswerStream",
    "ChatCompletionsServing",
    "sampling_of",
]

ROUTE_HEADER = "x-skillswitch-route"


class ChatCompletionsServing:
    """Turns a chat completion request into a run of the switch and its answer."""

    def __init__(self, switch: Switch, targets: Targets, metrics: Metrics) -> None:
        self.switch = switch
        self.targets = targets
        self.metrics = metrics

    async def create(self, body: ChatCompletionRequest, request: Request) -> Response:
        request.state.model = "unknown"
        target = self.targets.resolve(body.model)
        request.state.model = target.model
        headers = ignored("chat.completions", body.ignored_fields())
        check_n(body.n)
        offered = client_tools_of(body)
        tools: dict[str, Any] = (
            {} if offered is None else {"tools": offered.specs, "tool_choice": offered.choice}
        )
        sampling = sampling_of(body)
        messages = to_messages(body.messages)
        if body.stream:
            events = self.switch.stream(
                messages,
                skill=target.skill,
                expert=target.expert,
                announce_route=True,
                sampling=sampling,
                **tools,
            )
            chunks = _Chunks(new_id("chatcmpl"), now(), body.model, body.include_usage())
            return AnswerStream(
                events,
                chunks,
                headers=headers,
                route_header=lambda routed: route_header(
                    target, routed.decision, routed.selections
                ),
                on_answer=lambda answer: self.metrics.observe_answer(
                    answer, metrics_skill(target, answer)
                ),
                on_error=lambda exc, error, started: self._stream_failed(
                    body.model, exc, error, started
                ),
            )
        try:
            answer = await _unless_client_leaves(
                self.switch.run(
                    messages,
                    skill=target.skill,
                    expert=target.expert,
                    sampling=sampling,
                    **tools,
                ),
                request.receive,
            )
        except SkillSwitchError as exc:
            self.metrics.observe_failure(exc)
            error = switch_error(exc)
            _log_failure(body.model, error)
            raise error from None
        if answer is None:  # the client left: its experts were cancelled, nobody to answer
            return Response(status_code=499)
        self.metrics.observe_answer(answer, metrics_skill(target, answer))
        trace = answer.trace
        headers[ROUTE_HEADER] = route_header(
            target,
            trace.decision,
            trace.selections,
            trace.aggregation.mode if trace.aggregation is not None else "none",
        )
        return Response(completion_json(answer, body.model), headers=headers, media_type=_JSON)

    def _stream_failed(
        self, model: str, exc: SkillSwitchError, error: OpenAIError, started: bool
    ) -> None:
        self.metrics.observe_failure(exc)
        _log_failure(model, error, streamed=True)
        if started:  # a refused stream is counted with its status by the middleware
            self.metrics.observe_error("/v1/chat/completions", error.status, error.code)


def _log_failure(model: str, error: OpenAIError, *, streamed: bool = False) -> None:
    """Operators see why a request failed (the upstream's words; secrets are redacted from
    every log record); client mistakes (4xx) are the client's to see, not logged here."""
    if error.status >= 500:
        kind = "stream" if streamed else "request"
        logger.warning(
            "%s for model %r failed with %d: %s", kind, model, error.status, error.message
        )


def sampling_of(body: ChatCompletionRequest) -> SamplingSettings:
    """The client's sampling fields and response_format, checked (a 400 naming the field when
    one is out of range or malformed: more than 4 stop strings, an empty one, a json_schema
    without a schema)."""
    try:
        return parse_sampling(body.sampling())
    except RequestError as exc:
        param = str(exc).split(" ", 1)[0].split("[", 1)[0].split(".", 1)[0]
        raise OpenAIError(400, str(exc), param=param) from None


def completion_json(answer: Answer, model: str) -> bytes:
    """The ``chat.completion`` body of an answer (protocol.ChatCompletion's shape, which the
    OpenAPI spec publishes), written straight to JSON: no model instances per request."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text or (None if answer.tool_calls else ""),
    }
    if answer.tool_calls:
        message["tool_calls"] = [call.to_openai() for call in answer.tool_calls]
    completion = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": _usage(answer.trace.usage),
        "skillswitch": answer.trace.to_dict(),
    }
    return orjson.dumps(completion)


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def metrics_skill(target: Target, answer: Answer) -> str:
    return NO_SKILL if target.kind == "expert" else answer.trace.decision.label


def route_header(
    target: Target,
    decision: RoutingDecision,
    selections: Sequence[Selection],
    aggregator: str | None = None,
) -> str:
    """The route in one header, e.g. ``route=auto;skill=math;experts=calculator;aggregator=
    pass_through`` (``route``: auto, skill or expert; ``skill`` ``-`` when an expert was named;
    ``aggregator``: how the answers became one, ``none`` when no expert was asked). Streams
    send the route as planned, before any expert answers: no ``aggregator`` (the trace on the
    last chunk says what happened)."""
    skills = (
        NO_SKILL if target.kind == "expert" else ",".join(decision.skill_names or (decision.label,))
    )
    experts = ",".join(selection.expert for selection in selections)
    value = f"route={target.kind};skill={skills};experts={experts}"
    if aggregator is not None:
        value += f";aggregator={aggregator}"
    # Names come from the config, but a header is printable ASCII whatever they hold.
    return "".join(c if " " <= c <= "~" else "?" for c in value)


class _Chunks:
    """The chat.completion.chunk events of one answer (protocol.ChatCompletionChunk's shape),
    as server-sent event bytes; a text delta is its text spliced into the bytes around it."""

    def __init__(self, chunk_id: str, created: int, model: str, include_usage: bool) -> None:
        self.id, self.created, self.model = chunk_id, created, model
        self.include_usage = include_usage
        head = orjson.dumps(
            {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
        )
        self._text_head = b"data: " + head[:-1] + b',"choices":[{"index":0,"delta":{"content":'
        # With include_usage every chunk carries "usage": null until the last one (OpenAI).
        usage = b',"usage":null' if include_usage else b""
        self._text_tail = b'},"logprobs":null,"finish_reason":null}]' + usage + b"}\n\n"

    def _chunk(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None = None,
        usage: Usage | None = None,
        trace: dict[str, Any] | None = None,
    ) -> bytes:
        """One event: a choice with ``delta`` (none: no choices, the usage chunk)."""
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None if usage is None else _usage(usage)
        if trace is not None:
            chunk["skillswitch"] = trace
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def opening(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def delta(self, text: str) -> bytes:
        return self._text_head + orjson.dumps(text) + self._text_tail

    def closing(self, answer: Answer) -> bytes:
        """The client's tool calls when there are, the finish chunk, then the usage chunk when
        asked for; the last carries the trace."""
        trace = answer.trace.to_dict()
        calls = [
            {"index": index, **call.to_openai()} for index, call in enumerate(answer.tool_calls)
        ]
        opening = self._chunk({"tool_calls": calls}) if calls else b""
        if not self.include_usage:
            return opening + self._chunk({}, answer.finish_reason, trace=trace)
        usage = answer.trace.usage
        finish = self._chunk({}, answer.finish_reason)
        return opening + finish + self._chunk(None, usage=usage, trace=trace)


class AnswerStream(Response):
    """A streamed answer: server-sent chat.completion.chunk events, then ``data: [DONE]``.

    The switch's stream runs inside this response, in one task, from its first event to its
    last (its context must not change task midway), and is cancelled when the client leaves.
    The response starts only once the first answer event is there, so that a request that
    fails before any text (no expert answered) gets its error status (502, 504) rather than a
    200 stream that breaks; a failure after that is sent as an OpenAI error event, which
    OpenAI clients raise. A ``Routed`` event, when the stream starts with one, becomes the
    route header (the route as planned); the last chunk carries the trace.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterator[Routed | TextDelta | Answer],
        chunks: _Chunks,
        *,
        headers: dict[str, str],
        on_answer: Callable[[Answer], None],
        on_error: Callable[[SkillSwitchError, OpenAIError, bool], None],
        route_header: Callable[[Routed], str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._route_header = route_header
        self._events = events
        self._chunks = chunks
        self._on_answer = on_answer
        self._on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(OSError):  # the client left while we were sending
            await _unless_client_leaves(self._respond(scope, receive, send), receive)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = self._events
        started = False
        try:
            try:
                event = await anext(events)
                if isinstance(event, Routed):
                    if self._route_header is not None:
                        header = self._route_header(event).encode("latin-1")
                        self.raw_headers.append((ROUTE_HEADER.encode(), header))
                    event = await anext(events)
            except SkillSwitchError as exc:
                error = switch_error(exc)
                self._on_error(exc, error, False)
                await error.response()(scope, receive, send)
                return
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            started = True
            # Events go out with the next text (the opening chunk with the first delta) or all
            # together at the end (finish, usage, trace, [DONE]): one write each, not one per
            # event; text is never held back.
            pending = self._chunks.opening()
            while not isinstance(event, Answer):
                if isinstance(event, TextDelta) and event.text:
                    await self._write(send, pending + self._chunks.delta(event.text))
                    pending = b""
                event = await anext(events)
            self._on_answer(event)
            pending += self._chunks.closing(event)
        except SkillSwitchError as exc:  # after the response started
            error = switch_error(exc)
            self._on_error(exc, error, True)
            pending += sse(error.body())
        except Exception as exc:
            if not started or isinstance(exc, OSError):
                raise  # before: the app's handlers answer 500; OSError: the client left
            logger.error("a streamed chat completion failed", exc_info=exc)
            error = OpenAIError(
                500, f"internal server error ({type(exc).__name__}); see the server log"
            )
            pending += sse(error.body())
        finally:
            close = getattr(events, "aclose", None)  # an async generator: end it in this task
            if close is not None:
                await close()
        body = pending + sse("[DONE]")
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    async def _write(send: Send, body: bytes) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _unless_client_leaves(run: Awaitable[T], receive: Receive) -> T | None:
    """``run``'s result, or None when the client disconnects first (``run`` is cancelled, and
    with it the experts' calls: nobody would read their answers).

    One watcher task and ``Task.cancel``: an anyio task group and cancel scope here cost ~10%
    of a bypassed request's CPU (py-spy, benchmarks/http_overhead.py)."""
    task = asyncio.current_task()
    assert task is not None
    state = {"running": True, "left": False}

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if state["running"]:
            state["left"] = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await run
    except asyncio.CancelledError:
        if state["left"] and task.uncancel() == 0:
            return None
        raise
    finally:
        state["running"] = False
        watcher.cancel()
