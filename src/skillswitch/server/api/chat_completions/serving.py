"""``POST /v1/chat/completions`` through the switch: routed by skill, pinned to a skill, or sent
to one expert by name; one choice, streamed or not, with the trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from skillswitch.agents.client_tools import ClientTools, parse_client_tools
from skillswitch.agents.messages import TextDelta
from skillswitch.exceptions import RequestError, SkillSwitchError
from skillswitch.router import RoutingDecision
from skillswitch.server.api.chat_completions.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ResponseMessage,
    Usage,
)
from skillswitch.server.api.common import ignored, logger, switch_error, to_messages
from skillswitch.server.api.metrics.collectors import Metrics
from skillswitch.server.api.targets import NO_SKILL, Target, Targets
from skillswitch.server.chat_chunks import ChunkChoice, Delta
from skillswitch.server.openai_errors import OpenAIError
from skillswitch.server.wire import check_n, new_id, now, sse
from skillswitch.trace import Answer, Routed, Selection

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["ROUTE_HEADER", "AnswerStream", "ChatCompletionsServing", "client_tools_of"]

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
        messages = to_messages(body.messages)
        if body.stream:
            events = self.switch.stream(
                messages,
                skill=target.skill,
                expert=target.expert,
                announce_route=True,
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
                self.switch.run(messages, skill=target.skill, expert=target.expert, **tools),
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
        completion = ChatCompletion(
            id=new_id("chatcmpl"),
            created=now(),
            model=body.model,
            choices=[
                Choice(
                    message=ResponseMessage(
                        content=answer.text or (None if answer.tool_calls else ""),
                        tool_calls=[call.to_openai() for call in answer.tool_calls] or None,
                    ),
                    finish_reason=answer.finish_reason,
                )
            ],
            usage=Usage.of(answer.trace.usage),
            skillswitch=answer.trace.to_dict(),
        )
        trace = answer.trace
        headers[ROUTE_HEADER] = route_header(
            target,
            trace.decision,
            trace.selections,
            trace.aggregation.mode if trace.aggregation is not None else "none",
        )
        return Response(
            completion.model_dump_json(), media_type="application/json", headers=headers
        )

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


def client_tools_of(body: ChatCompletionRequest) -> ClientTools | None:
    """The client's ``tools`` and ``tool_choice``, checked (a 400 naming the field when they
    are malformed); OpenAI's deprecated ``functions``/``function_call`` get a 400 that says to
    send ``tools``."""
    for field in ("functions", "function_call"):
        if getattr(body, field) is not None:
            raise OpenAIError(
                400,
                f"{field} is OpenAI's deprecated form of tools; send tools (and tool_choice) "
                "instead",
                param=field,
            )
    try:
        return parse_client_tools(body.tools, body.tool_choice)
    except RequestError as exc:
        param = "tool_choice" if str(exc).startswith("tool_choice") else "tools"
        raise OpenAIError(400, str(exc), param=param) from None


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
    """The chat.completion.chunk events of one answer."""

    def __init__(self, chunk_id: str, created: int, model: str, include_usage: bool) -> None:
        self.id, self.created, self.model = chunk_id, created, model
        self.include_usage = include_usage

    def _chunk(
        self,
        choices: list[ChunkChoice],
        usage: Usage | None = None,
        trace: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
            skillswitch=trace,
        )
        # With include_usage every chunk carries "usage": null until the last one (OpenAI).
        exclude = set() if self.include_usage else {"usage"}
        if trace is None:
            exclude.add("skillswitch")
        return chunk.model_dump(mode="json", exclude=exclude)

    def opening(self) -> dict[str, Any]:
        return self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])

    def delta(self, text: str) -> dict[str, Any]:
        return self._chunk([ChunkChoice(delta=Delta(content=text))])

    def closing(self, answer: Answer) -> list[dict[str, Any]]:
        """The client's tool calls when there are, the finish chunk, then the usage chunk when
        asked for; the last carries the trace."""
        trace = answer.trace.to_dict()
        calls = [
            {"index": index, **call.to_openai()} for index, call in enumerate(answer.tool_calls)
        ]
        opening = [self._chunk([ChunkChoice(delta=Delta(tool_calls=calls))])] if calls else []
        finish = [ChunkChoice(delta=Delta(), finish_reason=answer.finish_reason)]
        if not self.include_usage:
            return [*opening, self._chunk(finish, trace=trace)]
        usage = Usage.of(answer.trace.usage)
        return [*opening, self._chunk(finish), self._chunk([], usage, trace=trace)]


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
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                await self._respond(scope, receive, send)
            except OSError:
                pass  # the client left while we were sending; nothing more to do
            finally:
                group.cancel_scope.cancel()

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
            pending = sse(self._chunks.opening())
            while not isinstance(event, Answer):
                if isinstance(event, TextDelta) and event.text:
                    await self._write(send, pending + sse(self._chunks.delta(event.text)))
                    pending = b""
                event = await anext(events)
            self._on_answer(event)
            pending += b"".join(sse(chunk) for chunk in self._chunks.closing(event))
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


async def _unless_client_leaves(run: Awaitable[Answer], receive: Receive) -> Answer | None:
    """``run``'s answer, or None when the client disconnects first (``run`` is cancelled, and
    with it the experts' calls: nobody would read their answers)."""
    answer: Answer | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
        try:
            answer = await run
        except Exception as exc:  # raised below, outside the group (not as an ExceptionGroup)
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return answer


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
