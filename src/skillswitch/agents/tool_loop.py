"""The call/observe loop of a model expert that may call tools, whatever serves the model.

Each step shows the model the conversation and the tools' schemas. When it asks for tool calls,
they run concurrently and their results (or errors, as text the model can act on) are appended;
when it answers in text, that is the reply. After ``max_steps`` rounds of calls the model is
asked once more with tools disabled, so an answer always comes back. The reply's text is what
the model wrote at every step, in order (a step's text before its calls, as "Let me look that
up.", then the answer), steps apart by a blank line; ``stream`` sends it as the model writes
it. With a ``response_format`` the reply is the last step's text alone (the answer's object),
held back until that step is known to be the last.

The caller's tools of the request (``offered_client_tools()``) are offered beside the expert's
own. When the model calls one of them, the loop stops and the reply hands those calls to the
caller (any call of the expert's own tools in the same turn is left out: the caller's next
request, with its results, resumes the conversation).

A step is a function of the expert (``Step``, or ``StreamedStep`` for ``stream``): an
OpenAI-compatible endpoint (``ToolCallingExpert``) or the local backend (``LocalExpert``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall, ClientTools, offered_client_tools
from skillswitch.agents.messages import Message, TextDelta, Usage
from skillswitch.agents.sampling import requested_sampling
from skillswitch.exceptions import ExpertResponseError
from skillswitch.tools.base import Tool, ToolCall, ToolResult
from skillswitch.tools.sources import StaticTools, ToolSource

__all__ = [
    "MAX_RESULT_CHARS",
    "STEP_SEPARATOR",
    "ModelTurn",
    "Step",
    "StreamedStep",
    "ToolLoop",
    "tools_by_name",
]

MAX_RESULT_CHARS = 20_000
STEP_SEPARATOR = "\n\n"
"""Between the texts of two steps in the reply."""


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """What the model answered at one step: text, or calls (or both)."""

    text: str | None
    calls: tuple[ClientToolCall, ...]
    usage: Usage
    model: str
    finish_reason: str | None


Step = Callable[[list[dict[str, Any]], list[dict[str, Any]], Any], Awaitable[ModelTurn]]
"""``step(conversation, tools, tool_choice)``: one answer of the model, in OpenAI's shapes
(``tools`` empty: the model answers without tools)."""

StreamedStep = Callable[
    [list[dict[str, Any]], list[dict[str, Any]], Any], AsyncGenerator["str | ModelTurn", None]
]
"""A ``Step`` that yields its text as the model writes it (only text that is surely not part of
a call), then its ``ModelTurn``, whose ``text`` is those pieces joined."""


class ToolLoop:
    """Runs an expert's model with ``tools`` for at most ``max_steps`` rounds of calls."""

    def __init__(self, name: str, tools: Sequence[Tool] | ToolSource, max_steps: int) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if isinstance(tools, ToolSource):
            self.source: ToolSource = tools
        else:
            tools_by_name(tools)  # two tools of one name are a mistake to report now
            self.source = StaticTools(tools)
        self.name = name
        self.max_steps = max_steps

    async def run(self, messages: Sequence[Message], step: Step) -> ExpertReply:
        """The reply, each step answered whole."""

        async def whole(*args: Any) -> AsyncGenerator[str | ModelTurn, None]:
            turn = await step(*args)
            if turn.text:
                yield turn.text
            yield turn

        async for item in self.stream(messages, whole):
            if isinstance(item, ExpertReply):
                return item
        raise AssertionError("unreachable: the stream ends with the reply")  # pragma: no cover

    async def stream(
        self, messages: Sequence[Message], step: StreamedStep
    ) -> AsyncIterator[TextDelta | ExpertReply]:
        """The reply's text as the model writes it, step after step, then the reply."""
        started = time.perf_counter()
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        tools = tools_by_name(await self.source.tools_for(request))
        offered = offered_client_tools()
        if offered is not None and offered.choice.mode == "none":
            offered = None  # the caller wants no call of its tools; the expert's own stay on
        self._check_clashes(tools, offered)
        schemas = [tool.spec.to_openai() for tool in tools.values()]
        if offered is not None:
            schemas += offered.to_openai()
        conversation = [m.to_openai() for m in messages]
        usage = Usage()
        calls: list[ToolCall] = []
        texts: list[str] = []  # each step's text, where it wrote any
        formatted = requested_sampling().response_format is not None
        for number in range(1, self.max_steps + 2):
            last = number > self.max_steps  # tools off: the model must answer now
            turn: ModelTurn | None = None
            held: list[str] = []  # with a response_format: the step's text, until it is the last
            # closed here when this stream is (its consumer stopped): the step stops generating
            async with contextlib.aclosing(
                step(conversation, schemas, _choice(offered, number, last))
            ) as answering:
                async for item in answering:
                    if isinstance(item, ModelTurn):
                        turn = item
                    elif item and formatted:
                        held.append(item)
                    elif item:
                        if texts and not held:
                            yield TextDelta(STEP_SEPARATOR)
                        held.append(item)
                        yield TextDelta(item)
            if turn is None:
                raise ExpertResponseError(self.name, "a step ended without an answer")
            usage = usage + turn.usage
            if formatted:  # only the last step's text is the reply
                texts = [turn.text] if turn.text else []
            elif turn.text:
                texts.append(turn.text)
            for_caller = [c for c in turn.calls if offered and c.name in offered.names]
            if formatted and held and (for_caller or last or not turn.calls):
                yield TextDelta("".join(held))
            if for_caller:
                yield self._reply(turn, texts, started, usage, calls, for_caller)
                return
            if turn.calls and not last:
                conversation.append(_assistant_turn(turn.text, turn.calls))
                results = await self._run_calls(tools, turn.calls, number)
                calls.extend(results)
                for call, record in zip(turn.calls, results, strict=True):
                    conversation.append(
                        {"role": "tool", "tool_call_id": call.id, "content": record.result}
                    )
                continue
            if not turn.text or not turn.text.strip():
                raise ExpertResponseError(
                    self.name,
                    "the reply is empty" + (f" after {len(calls)} tool call(s)" if calls else ""),
                )
            yield self._reply(turn, texts, started, usage, calls, ())
            return
        raise AssertionError("unreachable: the last step has tools disabled")  # pragma: no cover

    def _reply(
        self,
        turn: ModelTurn,
        texts: Sequence[str],
        started: float,
        usage: Usage,
        calls: Sequence[ToolCall],
        for_caller: Sequence[ClientToolCall],
    ) -> ExpertReply:
        return ExpertReply(
            expert=self.name,
            text=STEP_SEPARATOR.join(texts),
            usage=usage,
            model=turn.model,
            finish_reason="tool_calls" if for_caller else turn.finish_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
            tool_calls=tuple(calls),
            client_tool_calls=tuple(for_caller),
        )

    def _check_clashes(self, tools: Mapping[str, Tool], offered: ClientTools | None) -> None:
        clashes = sorted(set(tools) & set(offered.names)) if offered is not None else []
        if clashes:
            raise ExpertResponseError(
                self.name,
                f"the caller's tools {', '.join(clashes)} have the names of this expert's own "
                "tools; rename them in the request",
            )

    async def _run_calls(
        self, tools: Mapping[str, Tool], requested: Sequence[ClientToolCall], step: int
    ) -> list[ToolCall]:
        results: list[ToolCall | None] = [None] * len(requested)

        async def run(index: int, call: ClientToolCall) -> None:
            begin = time.perf_counter()
            outcome = await _call(tools, call.name, call.arguments)
            text = outcome.text
            if len(text) > MAX_RESULT_CHARS:
                text = text[:MAX_RESULT_CHARS] + f"... [truncated, {len(outcome.text)} chars]"
            results[index] = ToolCall(
                call.name,
                call.arguments,
                text,
                outcome.is_error,
                step,
                (time.perf_counter() - begin) * 1000,
            )

        async with anyio.create_task_group() as group:
            for index, call in enumerate(requested):
                group.start_soon(run, index, call)
        return [r for r in results if r is not None]


def _choice(offered: ClientTools | None, step: int, last: bool) -> Any:
    """``tool_choice`` of a step: the caller's on the first (it may require a call), then
    ``auto``; ``none`` on the last, which must answer."""
    if last:
        return "none"
    if offered is not None and step == 1:
        return offered.choice.to_openai()
    return "auto"


def tools_by_name(tools: Sequence[Tool]) -> dict[str, Tool]:
    named = {tool.spec.name: tool for tool in tools}
    if len(named) != len(tools):
        names = [tool.spec.name for tool in tools]
        raise ValueError(
            f"two tools have the same name: {sorted({n for n in names if names.count(n) > 1})}"
        )
    return named


async def _call(tools: Mapping[str, Tool], name: str, raw: str) -> ToolResult:
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return ToolResult(f"unknown tool {name!r}; available tools: {known}", True)
    try:
        arguments = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ToolResult(
            f"arguments of {name} are not valid JSON ({exc.msg} at column {exc.colno}); "
            "send a JSON object",
            True,
        )
    if not isinstance(arguments, Mapping):
        return ToolResult(f"arguments of {name} must be a JSON object", True)
    return await tool.call(arguments)


def _assistant_turn(content: str | None, calls: Sequence[ClientToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [call.to_openai() for call in calls],
    }
