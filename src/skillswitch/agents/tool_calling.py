"""A model expert that may call tools: skillswitch runs the call/observe loop.

Each step sends the conversation and the tools' schemas to an OpenAI-compatible endpoint. When
the model asks for tool calls, they run concurrently and their results (or errors, as text the
model can act on) are appended; when it answers in text, that is the reply. After ``max_steps``
rounds of calls the model is asked once more with tools disabled, so an answer always comes back.

The caller's tools of the request (``offered_client_tools()``) are offered beside the expert's
own. When the model calls one of them, the loop stops and the reply hands those calls to the
caller (any call of the expert's own tools in the same turn is left out: the caller's next
request, with its results, resumes the conversation).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import anyio

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall, ClientTools, offered_client_tools
from skillswitch.agents.messages import Message, Prices, TextDelta, Usage
from skillswitch.agents.openai_chat import OpenAIChatExpert, SamplingSettings, _openai_messages
from skillswitch.exceptions import ExpertResponseError
from skillswitch.tools.base import Tool, ToolCall, ToolResult
from skillswitch.tools.sources import StaticTools, ToolSource

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionMessageToolCall

__all__ = ["ToolCallingExpert"]

MAX_RESULT_CHARS = 20_000


class ToolCallingExpert(OpenAIChatExpert):
    """An OpenAI-compatible model handed ``tools``; at most ``max_steps`` rounds of calls.

    >>> expert = ToolCallingExpert(  # doctest: +SKIP
    ...     "solver", "http://127.0.0.1:8000/v1", "qwen", tools=[FunctionTool(calculate)]
    ... )
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        *,
        tools: Sequence[Tool] | ToolSource,
        max_steps: int = 5,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        sampling: SamplingSettings | None = None,
        prices: Prices | None = None,
    ) -> None:
        super().__init__(
            name,
            base_url,
            model,
            api_key=api_key,
            timeout_s=timeout_s,
            sampling=sampling,
            prices=prices,
        )
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if isinstance(tools, ToolSource):
            self.source: ToolSource = tools
        else:
            _by_name(tools)  # two tools of one name are a mistake to report now
            self.source = StaticTools(tools)
        self.max_steps = max_steps

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        tools = _by_name(await self.source.tools_for(request))
        offered = offered_client_tools()
        if offered is not None and offered.choice.mode == "none":
            offered = None  # the caller wants no call of its tools; the expert's own stay on
        self._check_clashes(tools, offered)
        schemas = [tool.spec.to_openai() for tool in tools.values()]
        if offered is not None:
            schemas += offered.to_openai()
        conversation: list[ChatCompletionMessageParam] = _openai_messages(messages)
        usage = Usage()
        calls: list[ToolCall] = []
        for step in range(1, self.max_steps + 2):
            last = step > self.max_steps  # tools off: the model must answer now
            extra: dict[str, Any] = (
                {"tools": schemas, "tool_choice": _choice(offered, step, last)} if schemas else {}
            )
            completion = await self._complete(conversation, **extra)
            if completion.usage is not None:
                usage = usage + self._prices.usage(
                    completion.usage.prompt_tokens, completion.usage.completion_tokens
                )
            if not completion.choices:
                raise ExpertResponseError(self.name, "the response has no choices")
            choice = completion.choices[0]
            requested = [
                call for call in (choice.message.tool_calls or []) if call.type == "function"
            ]
            for_caller = [c for c in requested if offered and c.function.name in offered.names]
            if for_caller:
                return ExpertReply(
                    expert=self.name,
                    text=choice.message.content or "",
                    usage=usage,
                    model=completion.model or self._model,
                    finish_reason="tool_calls",
                    latency_ms=(time.perf_counter() - started) * 1000,
                    tool_calls=tuple(calls),
                    client_tool_calls=tuple(
                        ClientToolCall(c.id, c.function.name, c.function.arguments or "{}")
                        for c in for_caller
                    ),
                )
            if requested and not last:
                conversation.append(_assistant_turn(choice.message.content, requested))
                results = await self._run_calls(tools, requested, step)
                calls.extend(results)
                for call, record in zip(requested, results, strict=True):
                    conversation.append(
                        cast(
                            "ChatCompletionMessageParam",
                            {"role": "tool", "tool_call_id": call.id, "content": record.result},
                        )
                    )
                continue
            text = choice.message.content
            if not text or not text.strip():
                raise ExpertResponseError(
                    self.name,
                    "the reply is empty" + (f" after {len(calls)} tool call(s)" if calls else ""),
                )
            return ExpertReply(
                expert=self.name,
                text=text,
                usage=usage,
                model=completion.model or self._model,
                finish_reason=choice.finish_reason,
                latency_ms=(time.perf_counter() - started) * 1000,
                tool_calls=tuple(calls),
            )
        raise AssertionError("unreachable: the last step has tools disabled")  # pragma: no cover

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        """The loop's answer as one delta (tool steps are not streamable token by token)."""
        reply = await self.answer(messages)
        if reply.text:
            yield TextDelta(reply.text)
        yield reply

    def _check_clashes(self, tools: Mapping[str, Tool], offered: ClientTools | None) -> None:
        clashes = sorted(set(tools) & set(offered.names)) if offered is not None else []
        if clashes:
            raise ExpertResponseError(
                self.name,
                f"the caller's tools {', '.join(clashes)} have the names of this expert's own "
                "tools; rename them in the request",
            )

    async def _run_calls(
        self,
        tools: Mapping[str, Tool],
        requested: Sequence[ChatCompletionMessageToolCall],
        step: int,
    ) -> list[ToolCall]:
        results: list[ToolCall | None] = [None] * len(requested)

        async def run(index: int, call: ChatCompletionMessageToolCall) -> None:
            begin = time.perf_counter()
            name, raw = call.function.name, call.function.arguments or "{}"
            outcome = await _call(tools, name, raw)
            text = outcome.text
            if len(text) > MAX_RESULT_CHARS:
                text = text[:MAX_RESULT_CHARS] + f"... [truncated, {len(outcome.text)} chars]"
            results[index] = ToolCall(
                name, raw, text, outcome.is_error, step, (time.perf_counter() - begin) * 1000
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


def _by_name(tools: Sequence[Tool]) -> dict[str, Tool]:
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


def _assistant_turn(
    content: str | None, calls: Sequence[ChatCompletionMessageToolCall]
) -> ChatCompletionMessageParam:
    return cast(
        "ChatCompletionMessageParam",
        {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    },
                }
                for call in calls
            ],
        },
    )
