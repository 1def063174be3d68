"""The switch's background event loop (skillswitch.integrations.langchain.loop): results and
stream items cross to sync and async callers; a caller that is cancelled or leaves a stream
cancels the work in the loop; stopping releases whoever still waits; a sync call from inside
the loop is refused instead of waiting on itself forever."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from skillswitch.integrations.langchain.loop import SwitchLoop

WAIT_S = 10.0


@pytest.fixture
def loop() -> Iterator[SwitchLoop]:
    started = SwitchLoop(name="test-switch-loop")
    yield started
    started.stop()


class Watched:
    """Work that says when it starts and whether it was cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def sleep(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "woke"

    async def count(self) -> AsyncIterator[int]:
        self.started.set()
        try:
            for number in range(1_000_000):
                yield number
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def where() -> str:
    return threading.current_thread().name


def test_calls_run_in_the_loops_thread(loop: SwitchLoop) -> None:
    assert loop.call(where) == "test-switch-loop"
    assert asyncio.run(loop.acall(where)) == "test-switch-loop"


def test_the_callers_context_travels_with_a_call(loop: SwitchLoop) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    async def read() -> str:
        return request_id.get("unset")

    request_id.set("r-42")
    assert loop.call(read) == "r-42"


def test_errors_come_back_to_the_caller(loop: SwitchLoop) -> None:
    async def fail() -> None:
        raise LookupError("no such thing")

    async def fail_streaming() -> AsyncIterator[int]:
        yield 1
        raise LookupError("mid-stream")

    with pytest.raises(LookupError, match="no such thing"):
        loop.call(fail)
    items = loop.iterate(fail_streaming)
    assert next(items) == 1
    with pytest.raises(LookupError, match="mid-stream"):
        next(items)


def test_a_cancelled_async_caller_cancels_the_work(loop: SwitchLoop) -> None:
    work = Watched()

    async def impatient() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.acall(work.sleep), 0.05)

    asyncio.run(impatient())
    assert work.cancelled.wait(WAIT_S)


def test_leaving_a_sync_stream_cancels_it(loop: SwitchLoop) -> None:
    work = Watched()
    items = loop.iterate(work.count)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert work.cancelled.wait(WAIT_S)


def test_leaving_an_async_stream_cancels_it(loop: SwitchLoop) -> None:
    work = Watched()

    async def first_three() -> list[int]:
        taken: list[int] = []
        items = loop.aiterate(work.count)
        async for number in items:
            taken.append(number)
            if len(taken) == 3:
                break
        await items.aclose()  # type: ignore[attr-defined]  # an async generator
        return taken

    assert asyncio.run(first_three()) == [0, 1, 2]
    assert work.cancelled.wait(WAIT_S)


def test_stopping_the_loop_releases_a_waiting_stream() -> None:
    loop = SwitchLoop()
    work = Watched()

    async def silent() -> AsyncIterator[int]:
        await work.sleep()
        yield 0

    failures: list[BaseException] = []

    def consume() -> None:
        try:
            list(loop.iterate(silent))
        except RuntimeError as exc:
            failures.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert work.started.wait(WAIT_S)
    loop.stop()
    consumer.join(WAIT_S)
    assert not consumer.is_alive()
    assert "cancelled" in str(failures[0])
    assert not loop.running
    with pytest.raises(RuntimeError, match="event loop is stopped"):
        loop.call(where)


def test_a_sync_call_from_inside_the_loop_is_refused(loop: SwitchLoop) -> None:
    async def nested() -> str:
        return loop.call(where)

    with pytest.raises(RuntimeError, match="from inside the switch's own event loop"):
        loop.call(nested)

    async def nested_async() -> str:
        return await loop.acall(where)  # awaited in place: no crossing needed

    assert loop.call(nested_async) == "test-switch-loop"
