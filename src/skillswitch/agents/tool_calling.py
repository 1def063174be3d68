"""A model behind an OpenAI-compatible endpoint that may call tools: skillswitch runs the
call/observe loop (``agents.tool_loop``), one chat completion per step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message, Prices, TextDelta, Usage
from skillswitch.agents.openai_chat import OpenAIChatExpert, SamplingSettings
from skillswitch.agents.tool_loop import ModelTurn, ToolLoop
from skillswitch.exceptions import ExpertResponseError
from skillswitch.tools.base import Tool
from skillswitch.tools.sources import ToolSource

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["ToolCallingExpert"]


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
        self._loop = ToolLoop(name, tools, max_steps)

    @property
    def source(self) -> ToolSource:
        return self._loop.source

    @property
    def max_steps(self) -> int:
        return self._loop.max_steps

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        return await self._loop.run(messages, self._step)

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        """The loop's answer as one delta (tool steps are not streamable token by token)."""
        reply = await self.answer(messages)
        if reply.text:
            yield TextDelta(reply.text)
        yield reply

    async def _step(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], choice: Any
    ) -> ModelTurn:
        extra: dict[str, Any] = {"tools": tools, "tool_choice": choice} if tools else {}
        completion = await self._complete(
            cast("list[ChatCompletionMessageParam]", conversation), **extra
        )
        if not completion.choices:
            raise ExpertResponseError(self.name, "the response has no choices")
        usage = completion.usage
        message = completion.choices[0].message
        return ModelTurn(
            text=message.content,
            calls=tuple(
                ClientToolCall(call.id, call.function.name, call.function.arguments or "{}")
                for call in message.tool_calls or ()
                if call.type == "function"
            ),
            usage=Usage()
            if usage is None
            else self._prices.usage(usage.prompt_tokens, usage.completion_tokens),
            model=completion.model or self._model,
            finish_reason=completion.choices[0].finish_reason,
        )
