"""Experts for users' tests: no network, deterministic, and they still go through the real
dispatch path. Token counts are whitespace words (close enough for budget logic in tests)."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import anyio.to_thread

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message, Prices, TextDelta, last_user_text

__all__ = ["FunctionExpert", "TestExpert"]

Reply = str | Sequence[ClientToolCall]
Function = Callable[[Sequence[Message]], Reply | Awaitable[Reply]]


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

    async def _reply(self, messages: Sequence[Message]) -> Reply:
        raise NotImplementedError

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        self.calls.append(tuple(messages))
        if self._delay_s:
            await anyio.sleep(self._delay_s)
        reply = await self._reply(messages)
        text, calls = (reply, ()) if isinstance(reply, str) else ("", tuple(reply))
        prompt = sum(len(m.content.split()) for m in messages)
        return ExpertReply(
            expert=self._name,
            text=text,
            usage=self._prices.usage(prompt, len(text.split())),
            model=self._model,
            finish_reason="tool_calls" if calls else "stop",
            latency_ms=(time.perf_counter() - started) * 1000,
            client_tool_calls=calls,
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
        self._fixed = reply

    async def _reply(self, messages: Sequence[Message]) -> Reply:
        if self._fixed is not None:
            return self._fixed
        return f"{self.name}: {last_user_text(messages)}"


class FunctionExpert(_FakeExpert):
    """A function (sync or async) plays the model: ``function(messages) -> text``, or a list
    of ``ClientToolCall`` to ask the caller to run its tools (``offered_client_tools()`` says
    which the request offered; ``requested_sampling()`` the caller's sampling). A sync
    function runs in a worker thread, so the dispatcher's timeouts bound it as they bound any
    expert.

    >>> expert = FunctionExpert("upper", lambda messages: messages[-1].content.upper())
    """

    calls_client_tools = True

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

    async def _reply(self, messages: Sequence[Message]) -> Reply:
        if inspect.iscoroutinefunction(self._function):
            result = await self._function(messages)
        else:
            # A sync function runs in a worker thread: it does not hold up the event loop (the
            # other experts, the server), and a timeout or a client that leaves stops waiting
            # for it (the thread finishes on its own; Python cannot stop it). The request's
            # context (offered tools, sampling) goes with it.
            result = await anyio.to_thread.run_sync(
                self._function, messages, abandon_on_cancel=True
            )
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            result = await result
        if isinstance(result, str):
            return result
        if (
            isinstance(result, Sequence)
            and result
            and all(isinstance(call, ClientToolCall) for call in result)
        ):
            return result
        raise TypeError(
            f"FunctionExpert {self.name!r}: the function returned {type(result).__name__}; "
            "return the reply text (str) or a non-empty list of ClientToolCall"
        )
