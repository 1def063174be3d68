"""Call the recruited experts concurrently and keep whatever arrives.

Per expert: a timeout per attempt, retries with exponential backoff that honour Retry-After,
a circuit breaker with a cooldown, and configured fallbacks. Per request: a
deadline. Every attempt lands in the result, so a trace can say what happened. One expert's
answer can also be streamed under the same rules (``Dispatcher.stream``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

import anyio

from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.messages import Message, TextDelta, Usage
from skillswitch.exceptions import (
    ExpertCrashedError,
    ExpertError,
    ExpertHTTPError,
    ExpertResponseError,
    ExpertsFailedError,
    ExpertTimeoutError,
    UnknownExpertError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Attempt",
    "BreakerPolicy",
    "CircuitBreaker",
    "Dispatch",
    "Dispatcher",
    "ExpertResult",
    "RetryPolicy",
]

Clock = Callable[[], float]
T = TypeVar("T")
Outcome = Literal["ok", "error", "circuit_open", "deadline"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; waits grow ``base_delay_s * 2**n`` up to ``max_delay_s``,
    or as long as the expert's Retry-After asks when that is longer."""

    attempts: int = 3
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Open after ``failures`` failed calls in a row; after ``cooldown_s`` let one through."""

    failures: int = 5
    cooldown_s: float = 30.0


class CircuitBreaker:
    """closed -> (failures in a row) -> open -> (cooldown) -> half-open -> one trial call."""

    def __init__(self, policy: BreakerPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._policy.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def abandon(self) -> None:
        """A call ended without a verdict (cancelled): free the half-open trial slot."""
        self._trial_running = False

    def record(self, success: bool) -> None:
        self._trial_running = False
        if success:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._policy.failures:
            self._opened_at = self._clock()  # (re)open: a failed trial restarts the cooldown


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one expert: when (ms since the dispatch began), how long, and how it ended."""

    expert: str
    number: int
    started_ms: float
    duration_ms: float
    outcome: Outcome
    error: str | None = None
    status: int | None = None
    waited_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ExpertResult:
    """An expert's final say: a reply, or the last error, with every attempt made."""

    expert: str
    reply: ExpertReply | None
    error: ExpertError | None
    attempts: tuple[Attempt, ...]
    fallback_for: str | None = None


@dataclass(frozen=True)
class Dispatch:
    """Everything one dispatch produced, in the order the experts were asked; an expert that
    failed over to a fallback is followed by the fallback's result (``fallback_for`` names
    it)."""

    results: tuple[ExpertResult, ...]
    elapsed_ms: float
    deadline_hit: bool = False
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def replies(self) -> tuple[ExpertReply, ...]:
        return tuple(r.reply for r in self.results if r.reply is not None)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for reply in self.replies:
            total = total + reply.usage
        return total

    def merged(self, later: Dispatch) -> Dispatch:
        """This dispatch followed by ``later`` (a second stage started when this one ended):
        results concatenated, the later attempts' start times shifted onto this timeline."""
        offset = self.elapsed_ms

        def shift(attempt: Attempt) -> Attempt:
            return replace(attempt, started_ms=attempt.started_ms + offset)

        shifted = tuple(
            replace(result, attempts=tuple(map(shift, result.attempts))) for result in later.results
        )
        return Dispatch(
            self.results + shifted,
            self.elapsed_ms + later.elapsed_ms,
            self.deadline_hit or later.deadline_hit,
            self.attempts + tuple(map(shift, later.attempts)),
        )

    def raise_if_empty(self) -> None:
        """Raise :class:`ExpertsFailedError` (an ExceptionGroup) when no expert answered."""
        if not self.replies:
            errors = [r.error for r in self.results if r.error is not None]
            raise ExpertsFailedError("no expert answered", errors or [_no_answer()])


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable``'s result, or TimeoutError after ``seconds`` (it is cancelled). asyncio's
    timeout: an anyio cancel scope per wait (one per streamed event) was ~12% of a streamed
    gateway request's CPU (py-spy, benchmarks/http_overhead.py)."""
    async with asyncio.timeout(seconds):
        return await awaitable


def _no_answer() -> ExpertError:
    return ExpertError("*", "no expert was asked or the deadline passed first")


class Dispatcher:
    """Fans a conversation out to named experts.

    >>> dispatcher = Dispatcher({"a": TestExpert("a"), "b": TestExpert("b")})  # doctest: +SKIP
    >>> result = await dispatcher.dispatch(["a", "b"], messages, deadline_s=10)  # doctest: +SKIP
    """

    def __init__(
        self,
        experts: Mapping[str, Expert],
        *,
        timeout_s: float | Mapping[str, float] = 60.0,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._experts = dict(experts)
        self._timeouts = timeout_s
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._breakers = {
            name: CircuitBreaker(breaker or BreakerPolicy(), clock) for name in self._experts
        }
        self._fallbacks = {name: tuple(chain) for name, chain in (fallbacks or {}).items()}
        for name, chain in self._fallbacks.items():
            for candidate in (name, *chain):
                self._check(candidate)

    def breaker(self, name: str) -> CircuitBreaker:
        self._check(name)
        return self._breakers[name]

    async def dispatch(
        self,
        names: Sequence[str],
        messages: Sequence[Message],
        *,
        deadline_s: float | None = None,
    ) -> Dispatch:
        """Ask every expert in ``names`` at once; return when all have answered, failed (after
        retries and fallbacks) or the deadline passed (unfinished ones count as failed)."""
        for name in names:
            self._check(name)
        started = self._clock()
        deadline = started + deadline_s if deadline_s is not None else math.inf
        slots: list[tuple[ExpertResult, ...] | None] = [None] * len(names)
        attempts: list[Attempt] = []

        async def run(index: int, name: str) -> None:
            slots[index] = await self._with_fallbacks(name, messages, started, deadline, attempts)

        if len(names) == 1:
            # Nothing to fan out: no task, and asyncio's timeout for the deadline (a task group
            # and an anyio scope were ~14% of a gateway request's CPU). _call turns every
            # TimeoutError of its own into an ExpertTimeoutError: one here is the deadline's.
            try:
                async with asyncio.timeout(deadline_s):
                    await run(0, names[0])
                deadline_hit = False
            except TimeoutError:
                deadline_hit = True
        else:
            with anyio.move_on_after(deadline_s if deadline_s is not None else math.inf) as scope:
                async with anyio.create_task_group() as group:
                    for index, name in enumerate(names):
                        group.start_soon(run, index, name)
            deadline_hit = scope.cancelled_caught
        results = tuple(
            result
            for slot, name in zip(slots, names, strict=True)
            for result in (
                slot
                if slot is not None
                else (
                    ExpertResult(
                        name,
                        None,
                        ExpertTimeoutError(name, deadline_s or 0.0),
                        tuple(a for a in attempts if a.expert == name),
                    ),
                )
            )
        )
        return Dispatch(
            results,
            (self._clock() - started) * 1000,
            deadline_hit=deadline_hit,
            attempts=tuple(attempts),
        )

    async def _with_fallbacks(
        self,
        name: str,
        messages: Sequence[Message],
        started: float,
        deadline: float,
        attempts: list[Attempt],
    ) -> tuple[ExpertResult, ...]:
        """The expert's result, then, while the last one failed, each fallback's."""
        results = [await self._call(name, messages, started, deadline, attempts)]
        for fallback in self._fallbacks.get(name, ()):
            if results[-1].reply is not None:
                break
            answer = await self._call(fallback, messages, started, deadline, attempts)
            results.append(
                ExpertResult(
                    fallback, answer.reply, answer.error, answer.attempts, fallback_for=name
                )
            )
        return tuple(results)

    async def _call(
        self,
        name: str,
        messages: Sequence[Message],
        started: float,
        deadline: float,
        attempts: list[Attempt],
    ) -> ExpertResult:
        expert = self._experts[name]
        breaker = self._breakers[name]
        timeout = self._timeout_for(name)
        own: list[Attempt] = []

        def record(attempt: Attempt) -> None:
            own.append(attempt)
            attempts.append(attempt)

        if not breaker.allow():
            return self._refused(name, started, record, own)
        # The retry policy as a plain loop (tenacity's controller per call was ~8% of a gateway
        # request's CPU: py-spy, benchmarks/http_overhead.py).
        waited = 0.0
        try:
            for number in range(1, self._retry.attempts + 1):
                begin = self._clock()
                error: ExpertError
                try:
                    reply = await _within(
                        expert.answer(messages), min(timeout, max(deadline - begin, 0.0))
                    )
                except Exception as exc:
                    error = _expert_error(name, timeout, exc)
                else:
                    record(self._attempt(name, number, started, begin, "ok", None, waited))
                    breaker.record(True)
                    return ExpertResult(name, reply, None, tuple(own))
                record(self._attempt(name, number, started, begin, "error", error, waited))
                breaker.record(not error.expert_unwell)  # a decline shows it is up
                wait = self._retry_wait(number, error, breaker, deadline)
                if wait is None:
                    return ExpertResult(name, None, error, tuple(own))
                await anyio.sleep(wait)
                waited = wait * 1000
        finally:
            breaker.abandon()  # no-op after a verdict; frees the trial slot when cancelled
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    async def stream(
        self,
        name: str,
        messages: Sequence[Message],
        *,
        deadline_s: float | None = None,
    ) -> AsyncGenerator[TextDelta | Dispatch, None]:
        """Stream ``name``'s answer: its text deltas as they come, then the ``Dispatch`` that
        ``dispatch([name])`` would give (every attempt; a fallback's result after its
        expert's). Every attempt streams, under ``dispatch``'s rules: the same timeout per
        attempt, retry budget, breaker and deadline; an attempt that fails before its first
        delta is retried, then falls back. Text that went out cannot be taken back: a failure
        after it raises its ``ExpertError`` (recorded by the breaker first).

        >>> async for event in dispatcher.stream("a", messages, deadline_s=10):  # doctest: +SKIP
        ...     print(event)
        """
        self._check(name)
        started = self._clock()
        deadline = started + deadline_s if deadline_s is not None else math.inf
        attempts: list[Attempt] = []
        results: list[ExpertResult] = []
        for candidate in (name, *self._fallbacks.get(name, ())):
            if results and (results[-1].reply is not None or self._clock() >= deadline):
                break
            async for event in self._stream_call(candidate, messages, started, deadline, attempts):
                if isinstance(event, TextDelta):
                    yield event
                else:
                    fallback_for = None if candidate == name else name
                    results.append(replace(event, fallback_for=fallback_for))
        answered = results[-1].reply is not None
        yield Dispatch(
            tuple(results),
            self._ms(started),
            deadline_hit=not answered and self._clock() >= deadline,
            attempts=tuple(attempts),
        )

    async def _stream_call(
        self,
        name: str,
        messages: Sequence[Message],
        started: float,
        deadline: float,
        attempts: list[Attempt],
    ) -> AsyncIterator[TextDelta | ExpertResult]:
        """``_call`` for one streaming expert: its deltas, then its ``ExpertResult``, under the
        same policy (``_wait_s``, the breaker, the stops)."""
        expert = self._experts[name]
        breaker = self._breakers[name]
        timeout = self._timeout_for(name)
        own: list[Attempt] = []

        def record(attempt: Attempt) -> None:
            own.append(attempt)
            attempts.append(attempt)

        if not breaker.allow():
            yield self._refused(name, started, record, own)
            return
        waited = 0.0
        try:
            for number in range(1, self._retry.attempts + 1):
                begin = self._clock()
                ends = begin + min(timeout, max(deadline - begin, 0.0))
                sent = False
                events = expert.stream(messages)
                error: ExpertError
                try:
                    reply: ExpertReply | None = None
                    while reply is None:
                        event = await _within(anext(events, None), max(ends - self._clock(), 0.0))
                        if event is None:
                            raise ExpertResponseError(name, "the stream ended without a reply")
                        if isinstance(event, TextDelta):
                            sent = sent or bool(event.text)
                            yield event
                        else:
                            reply = event
                except Exception as exc:
                    error = _expert_error(name, timeout, exc)
                else:
                    record(self._attempt(name, number, started, begin, "ok", None, waited))
                    breaker.record(True)
                    yield ExpertResult(name, reply, None, tuple(own))
                    return
                finally:
                    close = getattr(events, "aclose", None)
                    if close is not None:
                        await close()
                record(self._attempt(name, number, started, begin, "error", error, waited))
                breaker.record(not error.expert_unwell)  # a decline shows it is up
                if sent:
                    raise error
                wait = self._retry_wait(number, error, breaker, deadline)
                if wait is None:
                    yield ExpertResult(name, None, error, tuple(own))
                    return
                await anyio.sleep(wait)
                waited = wait * 1000
        finally:
            breaker.abandon()  # no-op after a verdict; frees the trial slot when cancelled

    def _refused(
        self,
        name: str,
        started: float,
        record: Callable[[Attempt], None],
        own: list[Attempt],
    ) -> ExpertResult:
        """The result of a call the open circuit breaker did not let through."""
        refused = ExpertError(name, "circuit open after repeated failures; not called")
        record(Attempt(name, 1, self._ms(started), 0.0, "circuit_open", str(refused)))
        return ExpertResult(name, None, refused, tuple(own))

    def _retry_wait(
        self, number: int, error: ExpertError, breaker: CircuitBreaker, deadline: float
    ) -> float | None:
        """How long to wait before attempt ``number + 1``, or None to give up: the budget is
        spent, the wait would end past the deadline, the error is not worth retrying, or the
        breaker has opened (the expert is failing: stop adding load)."""
        wait = self._wait_s(number, error)
        last = number == self._retry.attempts or self._clock() + wait >= deadline
        if last or not error.retryable or breaker.state != "closed":
            return None
        return wait

    def _wait_s(self, number: int, exc: BaseException | None) -> float:
        """The wait after failed attempt ``number``: exponential backoff, or the expert's
        Retry-After when that is longer."""
        backoff = min(self._retry.max_delay_s, self._retry.base_delay_s * 2.0 ** (number - 1))
        retry_after: float | None = exc.retry_after_s if isinstance(exc, ExpertHTTPError) else None
        return max(backoff, retry_after or 0.0)

    def _attempt(
        self,
        name: str,
        number: int,
        started: float,
        begin: float,
        outcome: Outcome,
        error: ExpertError | None,
        waited_ms: float,
    ) -> Attempt:
        return Attempt(
            expert=name,
            number=number,
            started_ms=(begin - started) * 1000,
            duration_ms=(self._clock() - begin) * 1000,
            outcome=outcome,
            error=None if error is None else str(error),
            status=error.status if isinstance(error, ExpertHTTPError) else None,
            waited_ms=waited_ms,
        )

    def _timeout_for(self, name: str) -> float:
        if isinstance(self._timeouts, Mapping):
            return float(self._timeouts.get(name, 60.0))
        return float(self._timeouts)

    def _ms(self, started: float) -> float:
        return (self._clock() - started) * 1000

    def _check(self, name: str) -> None:
        if name not in self._experts:
            raise UnknownExpertError(name, sorted(self._experts))


def _expert_error(name: str, timeout_s: float, exc: Exception) -> ExpertError:
    """What an attempt's exception says of the expert: out of time, its own error, or a bug."""
    if isinstance(exc, TimeoutError):
        return ExpertTimeoutError(name, timeout_s)
    if isinstance(exc, ExpertError):
        return exc
    crashed = _crashed(name, exc)
    crashed.__cause__ = exc
    return crashed


def _crashed(name: str, exc: Exception) -> ExpertCrashedError:
    """A bug in an expert fails that expert alone (never the request); its traceback is logged."""
    logger.error("expert %r raised %s", name, type(exc).__name__, exc_info=exc)
    return ExpertCrashedError(name, exc)
