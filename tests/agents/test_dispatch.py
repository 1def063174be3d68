from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from skillswitch.agents import FunctionExpert, Message, OpenAIChatExpert, TestExpert, parse_messages
from skillswitch.agents.base import ExpertReply
from skillswitch.agents.dispatch import BreakerPolicy, Dispatch, Dispatcher, RetryPolicy
from skillswitch.agents.messages import TextDelta, Usage
from skillswitch.exceptions import (
    ExpertCrashedError,
    ExpertDeclinedError,
    ExpertError,
    ExpertHTTPError,
    ExpertRequestError,
    ExpertResponseError,
    ExpertsFailedError,
    ExpertTimeoutError,
    SkillSwitchError,
    ToolDeclinedError,
    UnknownExpertError,
)

pytestmark = pytest.mark.anyio
ASK = parse_messages("what is 2+2")
FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, messages: Sequence[Message]) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "4"


async def test_experts_run_concurrently_and_results_keep_their_order() -> None:
    started = anyio.Event()
    arrived = 0

    async def meet(messages: Sequence[Message]) -> str:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            started.set()
        with anyio.fail_after(5):  # only returns if all three run at the same time
            await started.wait()
        return "ok"

    experts = {name: FunctionExpert(name, meet) for name in ("a", "b", "c")}
    result = await Dispatcher(experts).dispatch(["c", "a", "b"], ASK, deadline_s=10)
    assert [r.expert for r in result.results] == ["c", "a", "b"]
    assert [r.reply.text for r in result.results if r.reply] == ["ok", "ok", "ok"]


async def test_a_failing_expert_is_retried_and_the_others_are_kept() -> None:
    flaky = Flaky(5, ExpertHTTPError("bad", 503, "down"))
    experts = {"good": TestExpert("good", reply="4"), "bad": FunctionExpert("bad", flaky)}
    result = await Dispatcher(experts, retry=FAST).dispatch(["good", "bad"], ASK)
    good, bad = result.results
    assert good.reply is not None
    assert bad.reply is None
    assert isinstance(bad.error, ExpertHTTPError)
    assert [a.outcome for a in bad.attempts] == ["error", "error", "error"]
    assert flaky.calls == 3
    assert [r.text for r in result.replies] == ["4"]


async def test_retry_after_is_honoured() -> None:
    flaky = Flaky(1, ExpertHTTPError("r", 429, "slow down", retry_after_s=0.2))
    result = await Dispatcher({"r": FunctionExpert("r", flaky)}, retry=FAST).dispatch(["r"], ASK)
    first, second = result.results[0].attempts
    assert first.status == 429
    assert second.outcome == "ok"
    assert second.waited_ms >= 200
    assert second.started_ms >= first.started_ms + 200


async def test_client_errors_are_not_retried() -> None:
    flaky = Flaky(1, ExpertHTTPError("x", 400, "bad request"))
    result = await Dispatcher({"x": FunctionExpert("x", flaky)}, retry=FAST).dispatch(["x"], ASK)
    assert len(result.results[0].attempts) == 1
    assert flaky.calls == 1


async def test_per_attempt_timeout() -> None:
    async def hang(messages: Sequence[Message]) -> str:
        await anyio.sleep(30)
        return "never"

    dispatcher = Dispatcher({"slow": FunctionExpert("slow", hang)}, timeout_s=0.1, retry=FAST)
    result = await dispatcher.dispatch(["slow"], ASK)
    assert isinstance(result.results[0].error, ExpertTimeoutError)
    assert len(result.results[0].attempts) == 3


async def test_a_sync_function_expert_is_bounded_by_its_timeout_too() -> None:
    """A blocking function runs in a worker thread: the timeout ends the wait for it, and the
    event loop keeps serving the other expert meanwhile."""
    release = threading.Event()

    def blocking(messages: Sequence[Message]) -> str:
        release.wait(5)
        return "late"

    experts = {"sync": FunctionExpert("sync", blocking), "quick": TestExpert("quick", reply="4")}
    dispatcher = Dispatcher(experts, timeout_s=0.2, retry=RetryPolicy(attempts=1))
    started = time.perf_counter()
    result = await dispatcher.dispatch(["sync", "quick"], ASK)
    elapsed = time.perf_counter() - started
    release.set()
    assert isinstance(result.results[0].error, ExpertTimeoutError)
    assert result.results[1].reply is not None
    assert result.results[1].reply.text == "4"
    assert elapsed < 2  # not the function's 5 s


async def test_the_deadline_ends_the_dispatch_with_what_arrived() -> None:
    async def hang(messages: Sequence[Message]) -> str:
        await anyio.sleep(30)
        return "never"

    experts = {"slow": FunctionExpert("slow", hang), "quick": TestExpert("quick", reply="4")}
    with anyio.fail_after(5):
        result = await Dispatcher(experts, retry=FAST).dispatch(
            ["slow", "quick"], ASK, deadline_s=0.3
        )
    slow, quick = result.results
    assert quick.reply is not None
    assert isinstance(slow.error, ExpertTimeoutError)


async def test_fallback_answers_when_the_primary_fails() -> None:
    flaky = Flaky(99, ExpertHTTPError("primary", 400, "nope"))
    experts = {
        "primary": FunctionExpert("primary", flaky),
        "backup": TestExpert("backup", reply="4"),
    }
    dispatcher = Dispatcher(experts, retry=FAST, fallbacks={"primary": ["backup"]})
    failed, result = (await dispatcher.dispatch(["primary"], ASK)).results
    assert (failed.expert, failed.fallback_for, failed.reply) == ("primary", None, None)
    assert isinstance(failed.error, ExpertHTTPError)
    assert failed.attempts[0].status == 400
    assert result.expert == "backup"
    assert result.fallback_for == "primary"
    assert result.reply is not None


async def test_an_expert_that_raises_a_bug_fails_alone_and_its_fallback_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in an expert (here a TypeError) is that expert's failure, not the request's: no
    retry, the fallback answers, the other experts are kept and the traceback is logged."""
    buggy = Flaky(99, TypeError("unhashable type: 'dict'"))
    experts = {
        "buggy": FunctionExpert("buggy", buggy),
        "backup": TestExpert("backup", reply="4"),
        "other": TestExpert("other", reply="4"),
    }
    dispatcher = Dispatcher(experts, retry=FAST, fallbacks={"buggy": ["backup"]})
    failed, backup, other = (await dispatcher.dispatch(["buggy", "other"], ASK)).results
    assert isinstance(failed.error, ExpertCrashedError)
    assert "raised TypeError: unhashable type: 'dict'" in str(failed.error)
    assert buggy.calls == 1
    assert len(failed.attempts) == 1
    assert (backup.expert, backup.fallback_for, backup.reply is not None) == (
        "backup",
        "buggy",
        True,
    )
    assert other.reply is not None
    assert "Traceback" in caplog.text
    assert "TypeError" in caplog.text
    streamed = Streamer("s", fail_before=99, error=KeyError("oops"))
    dispatcher = Dispatcher({"s": streamed, "b": Streamer("b")}, retry=FAST, fallbacks={"s": ["b"]})
    text, dispatch = await collect(dispatcher, "s")
    assert (text, streamed.calls) == ("four it is", 1)
    assert isinstance(dispatch.results[0].error, ExpertCrashedError)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_circuit_breaker_opens_then_lets_one_trial_through() -> None:
    clock = FakeClock()
    flaky = Flaky(2, ExpertHTTPError("x", 503, "overloaded"))
    dispatcher = Dispatcher(
        {"x": FunctionExpert("x", flaky)},
        retry=FAST,
        breaker=BreakerPolicy(failures=2, cooldown_s=30),
        clock=clock,
    )
    for _ in range(2):
        await dispatcher.dispatch(["x"], ASK)
    assert dispatcher.breaker("x").state == "open"
    refused = await dispatcher.dispatch(["x"], ASK)
    assert refused.results[0].attempts[0].outcome == "circuit_open"
    assert flaky.calls == 2  # not called while open
    clock.now += 31
    assert dispatcher.breaker("x").state == "half_open"
    trial = await dispatcher.dispatch(["x"], ASK)
    assert trial.results[0].reply is not None
    assert dispatcher.breaker("x").state == "closed"


@pytest.mark.parametrize(
    "refusal",
    [
        ExpertDeclinedError("x", "the request does not give what calculator needs"),
        ExpertRequestError("x", "the prompt is 2500 tokens but the model takes at most 2048"),
        ExpertHTTPError("x", 400, "maximum context length exceeded"),
        ExpertHTTPError("x", 413, "request too large"),
    ],
    ids=["declined", "request", "http-400", "http-413"],
)
async def test_refusing_requests_never_opens_the_circuit(refusal: ExpertError) -> None:
    """An expert that refuses one request as put is up: a run of such requests must not cut it
    off for the requests it can answer."""
    flaky = Flaky(6, refusal)
    dispatcher = Dispatcher(
        {"x": FunctionExpert("x", flaky)},
        retry=FAST,
        breaker=BreakerPolicy(failures=2, cooldown_s=30),
        clock=FakeClock(),
    )
    for _ in range(6):
        refused = await dispatcher.dispatch(["x"], ASK)
        assert [a.outcome for a in refused.results[0].attempts] == ["error"]  # never retried
        assert refused.results[0].error is refusal
        assert dispatcher.breaker("x").state == "closed"
    answered = await dispatcher.dispatch(["x"], ASK)
    assert answered.results[0].reply is not None
    assert flaky.calls == 7


async def test_unknown_names_and_total_failure() -> None:
    dispatcher = Dispatcher({"math": TestExpert("math")})
    with pytest.raises(UnknownExpertError, match="did you mean 'math'"):
        await dispatcher.dispatch(["maths"], ASK)
    with pytest.raises(UnknownExpertError):
        Dispatcher({"a": TestExpert("a")}, fallbacks={"a": ["b"]})
    failing = Dispatcher({"f": FunctionExpert("f", Flaky(9, ExpertHTTPError("f", 400, "x")))})
    result = await failing.dispatch(["f"], ASK)
    with pytest.raises(ExpertsFailedError) as caught:
        result.raise_if_empty()
    assert isinstance(caught.value, ExceptionGroup)
    assert isinstance(caught.value, SkillSwitchError)
    assert isinstance(caught.value.exceptions[0], ExpertHTTPError)


async def test_real_upstream_mix_of_outcomes(upstream: str) -> None:
    experts = {
        "echo": OpenAIChatExpert("echo", upstream, "echo"),
        "broken": OpenAIChatExpert("broken", upstream, "fail-500"),
        "stalled": OpenAIChatExpert("stalled", upstream, "stall", timeout_s=5),
    }
    dispatcher = Dispatcher(experts, timeout_s={"stalled": 0.3}, retry=FAST)
    result = await dispatcher.dispatch(["echo", "broken", "stalled"], ASK, deadline_s=5)
    echo, broken, stalled = result.results
    assert echo.reply is not None
    assert echo.reply.text == "echo: what is 2+2"
    assert isinstance(broken.error, ExpertHTTPError)
    assert len(broken.attempts) == 3
    assert isinstance(stalled.error, ExpertTimeoutError)
    assert result.usage.total_tokens == echo.reply.usage.total_tokens
    for expert in experts.values():
        await expert.aclose()


async def test_retries_stop_once_the_breaker_opens() -> None:
    flaky = Flaky(99, ExpertHTTPError("x", 503, "down"))
    dispatcher = Dispatcher(
        {"x": FunctionExpert("x", flaky)},
        retry=RetryPolicy(attempts=5, base_delay_s=0.001, max_delay_s=0.01),
        breaker=BreakerPolicy(failures=2, cooldown_s=60),
    )
    result = await dispatcher.dispatch(["x"], ASK)
    assert len(result.results[0].attempts) == 2
    assert dispatcher.breaker("x").state == "open"


async def test_a_cancelled_trial_frees_the_half_open_slot() -> None:
    clock = FakeClock()

    async def hang(messages: Sequence[Message]) -> str:
        await anyio.sleep(30)
        return "never"

    dispatcher = Dispatcher(
        {"x": FunctionExpert("x", hang)},
        retry=RetryPolicy(attempts=1),
        breaker=BreakerPolicy(failures=1, cooldown_s=10),
        clock=clock,
    )
    breaker = dispatcher.breaker("x")
    breaker.record(False)
    clock.now += 11
    assert breaker.state == "half_open"
    with anyio.move_on_after(0.1):
        await dispatcher.dispatch(["x"], ASK)
    assert breaker.allow()  # the cancelled trial did not keep the slot


# --- streaming one expert under the same rules ------------------------------------------------


class Streamer:
    """Streams ``words``; ``fail_before`` attempts fail before any text with ``error``, and an
    attempt may die after ``die_after`` words."""

    def __init__(
        self,
        name: str,
        *,
        fail_before: int = 0,
        error: Exception | None = None,
        die_after: int | None = None,
        words: Sequence[str] = ("four", " it", " is"),
    ) -> None:
        self.name = name
        self.fail_before = fail_before
        self.error = error or ExpertHTTPError(name, 503, "down")
        self.die_after = die_after
        self.words = list(words)
        self.calls = 0

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        raise AssertionError("a stream must not fall back to answer()")

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        self.calls += 1
        if self.calls <= self.fail_before:
            raise self.error
        for index, word in enumerate(self.words):
            if self.die_after is not None and index == self.die_after:
                raise ExpertResponseError(self.name, "the stream ended midway")
            yield TextDelta(word)
        yield ExpertReply(self.name, "".join(self.words), Usage(), "m", "stop")


async def collect(
    dispatcher: Dispatcher, name: str, deadline_s: float | None = None
) -> tuple[str, Dispatch]:
    text, last = "", None
    async for event in dispatcher.stream(name, ASK, deadline_s=deadline_s):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            last = event
    assert last is not None
    return text, last


async def test_a_stream_is_retried_before_its_first_token_within_the_budget() -> None:
    """Regression: Switch.stream made one streaming call outside the dispatcher, then the
    dispatcher's retries (attempts + 1 calls in all; the first not in the trace)."""
    primary = Streamer("p", fail_before=99)
    backup = Streamer("b")
    dispatcher = Dispatcher({"p": primary, "b": backup}, retry=FAST, fallbacks={"p": ["b"]})
    text, dispatch = await collect(dispatcher, "p")
    assert text == "four it is"
    assert (primary.calls, backup.calls) == (FAST.attempts, 1)
    failed, answered = dispatch.results
    assert [a.outcome for a in failed.attempts] == ["error"] * FAST.attempts
    assert (answered.expert, answered.fallback_for, answered.reply is not None) == ("b", "p", True)
    assert dispatch.replies[0].text == "four it is"


async def test_a_stream_respects_an_open_breaker_and_feeds_it() -> None:
    """Regression: the streaming call ignored the breaker (called while open, failures not
    counted)."""
    primary = Streamer("p", fail_before=99)
    dispatcher = Dispatcher(
        {"p": primary, "b": Streamer("b")},
        retry=FAST,
        breaker=BreakerPolicy(failures=2, cooldown_s=60),
        fallbacks={"p": ["b"]},
    )
    await collect(dispatcher, "p")
    assert primary.calls == 2  # retries stop once the breaker opens
    assert dispatcher.breaker("p").state == "open"
    text, dispatch = await collect(dispatcher, "p")
    assert primary.calls == 2
    assert text == "four it is"
    assert [a.outcome for a in dispatch.results[0].attempts] == ["circuit_open"]


async def test_a_stream_that_fails_after_text_raises_without_retry() -> None:
    dying = Streamer("d", die_after=2)
    dispatcher = Dispatcher({"d": dying, "b": Streamer("b")}, retry=FAST, fallbacks={"d": ["b"]})
    received: list[str] = []

    async def consume() -> None:
        async for event in dispatcher.stream("d", ASK):
            assert isinstance(event, TextDelta)
            received.append(event.text)

    with pytest.raises(ExpertResponseError, match="midway"):
        await consume()
    assert received == ["four", " it"]
    assert dying.calls == 1
    assert dispatcher.breaker("d")._failures == 1


async def test_a_stream_attempt_has_the_expert_timeout_and_the_deadline() -> None:
    class Slow(Streamer):
        async def stream(
            self, messages: Sequence[Message]
        ) -> AsyncIterator[TextDelta | ExpertReply]:
            self.calls += 1
            await anyio.sleep(30)
            yield TextDelta("never")

    slow = Slow("s")
    dispatcher = Dispatcher({"s": slow}, timeout_s=0.05, retry=FAST)
    with anyio.fail_after(5):
        text, dispatch = await collect(dispatcher, "s")
    assert text == ""
    assert isinstance(dispatch.results[0].error, ExpertTimeoutError)
    assert slow.calls == FAST.attempts
    with anyio.fail_after(5):
        text, dispatch = await collect(Dispatcher({"s": slow}, retry=FAST), "s", deadline_s=0.1)
    assert dispatch.deadline_hit
    assert not dispatch.replies


def test_tool_experts_that_found_nothing_are_said_in_one_reason() -> None:
    failed = ExpertsFailedError(
        "no expert answered",
        [
            ToolDeclinedError("converter", "builtin__units"),
            ExpertTimeoutError("writer", 5),
            ToolDeclinedError("clock", "builtin__clock"),
            ToolDeclinedError("calendar", "builtin__calendar"),
        ],
    )
    assert failed.reasons() == (
        "experts 'converter', 'clock' and 'calendar' found nothing in the request for "
        "builtin__units, builtin__clock and builtin__calendar; rephrase it, or send it to "
        "another model or skill; expert 'writer': no answer within 5 s"
    )
    alone = ExpertsFailedError("no expert answered", [ToolDeclinedError("clock", "time")])
    assert alone.reasons() == (
        "expert 'clock': the request does not give what time needs; rephrase it, or send it "
        "to another model or skill"
    )
    assert isinstance(alone.exceptions[0], ExpertDeclinedError)  # HTTP 422, not 502
