"""Experts for users' tests: no network, deterministic, and they still go through the real
dispatch path. Token counts are whitespace words (close enough for budget logic in tests)."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.messages import Message, Prices, TextDelta

__all__ = ["FunctionExpert", "TestExpert"]

Function = Callable[[Sequence[Message]], str | Awaitable[str]]


class _FakeExpert:
    def __init__(self, name: str, *, prices: Prices | None, delay_s: float, model: str) -> None:
        self._name = name
        self._prices = prices or Prices()
        self._delay_s = delay_s
        self._model = model
        self.calls: list[tuple[Message, ...]] = []

    @property
    def name(self) -> str:
        return self._name

    async def _text(self, messages: Sequence[Message]) -> str:
        raise NotImplementedError

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        self.calls.append(tuple(messages))
        if self._delay_s:
            await anyio.sleep(self._delay_s)
        text = await self._text(messages)
        prompt = sum(len(m.content.split()) for m in messages)
        return ExpertReply(
            expert=self._name,
            text=text,
            usage=self._prices.usage(prompt, len(text.split())),
            model=self._model,
            finish_reason="stop",
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        reply = await self.answer(messages)
        words = reply.text.split(" ")
        for index, word in enumerate(words):
            yield TextDelta(word if index == 0 else f" {word}")
        yield reply


class TestExpert(_FakeExpert):
    """Always answers ``reply`` (default: ``"<name>: <last user message>"``).

    >>> expert = TestExpert("math", reply="42")
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        name: str,
        reply: str | None = None,
        *,
        prices: Prices | None = None,
        delay_s: float = 0.0,
        model: str = "test",
    ) -> None:
        super().__init__(name, prices=prices, delay_s=delay_s, model=model)
        self._reply = reply

    async def _text(self, messages: Sequence[Message]) -> str:
        if self._reply is not None:
            return self._reply
        return f"{self.name}: {messages[-1].content}"


class FunctionExpert(_FakeExpert):
    """A function (sync or async) plays the model: ``function(messages) -> text``.

    >>> expert = FunctionExpert("upper", lambda messages: messages[-1].content.upper())
    """

    def __init__(
        self,
        name: str,
        function: Function,
        *,
        prices: Prices | None = None,
        delay_s: float = 0.0,
        model: str = "function",
    ) -> None:
        super().__init__(name, prices=prices, delay_s=delay_s, model=model)
        self._function = function

    async def _text(self, messages: Sequence[Message]) -> str:
        result = self._function(messages)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise TypeError(
                f"FunctionExpert {self.name!r}: the function returned "
                f"{type(result).__name__}; return the reply text (str)"
            )
        return result
