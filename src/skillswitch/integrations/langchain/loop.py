"""One background event loop per ``Switch``, where every LangChain call on that switch runs.

The experts' HTTP connections belong to the event loop that opened them: reused from another
loop they fail ("Event loop is closed" once the first loop is gone). LangChain code mixes sync
and async freely (``invoke`` in a notebook whose loop is running, ``asyncio.run(ainvoke(...))``
twice, ``batch`` from a thread pool), so the chat model never runs the switch in its caller's
loop: calls go to the switch's own loop in a daemon thread (as ``ToolHub`` does for MCP
sessions) and their results, or stream items one by one, come back to the caller. Sync callers
block on a future; async callers await it in their own loop; a caller that is cancelled or
leaves a stream cancels the work in the switch's loop. The caller's context variables travel
with each call (``asyncio.run_coroutine_threadsafe`` copies them).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["SwitchLoop", "close_switch", "loop_for"]

T = TypeVar("T")

_END = object()
"""Put after a stream's last item."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """Put when a stream fails; the consumer raises ``error``."""

    error: BaseException


class SwitchLoop:
    """An asyncio loop in a daemon thread, and the ways to run coroutines and streams in it."""

    def __init__(self, name: str = "skillswitch-langchain") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._loop.is_closed()

    def _inside(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def _refuse_inside(self, what: str) -> None:
        if self._inside():
            raise RuntimeError(
                f"{what} was called from inside the switch's own event loop (e.g. by an async "
                "tool of one of its experts) and would wait on itself forever; use the async "
                "form there (ainvoke, astream, abatch)"
            )

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        if not self.running:
            coroutine.close()
            raise RuntimeError("this switch's event loop is stopped; make a new SwitchLoop")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def call(self, function: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``await function()`` in the loop; block this thread until it is done."""
        self._refuse_inside("a synchronous call")
        future = self._submit(function())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the work too
            raise

    async def acall(self, function: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``await function()`` in the loop, awaited from the caller's asyncio loop."""
        if self._inside():
            return await function()
        future = self._submit(function())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # cancels the task in the switch's loop (and its expert calls)
            raise

    def iterate(self, open_events: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """The items of ``open_events()``, iterated in the loop, as they come; leaving early
        cancels the iteration there."""
        self._refuse_inside("a synchronous stream")
        items: queue.SimpleQueue[object] = queue.SimpleQueue()
        future = self._submit(_pump(open_events, items.put))
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield cast("T", item)  # only T, _END or _Failure are put
        finally:
            future.cancel()

    async def aiterate(self, open_events: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """``iterate`` for an async caller: items cross to the caller's loop as they come."""
        if self._inside():
            async for event in open_events():
                yield event
            return
        caller = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()

        def put(item: object) -> None:
            # A closed caller loop means nobody is listening any more: drop the item.
            with contextlib.suppress(RuntimeError):
                caller.call_soon_threadsafe(items.put_nowait, item)

        future = self._submit(_pump(open_events, put))
        try:
            while True:
                item = await items.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield cast("T", item)  # only T, _END or _Failure are put
        finally:
            future.cancel()

    def stop(self) -> None:
        """Cancel what still runs in the loop, stop it and wait for its thread."""
        if not self.running:
            return
        if self._inside():
            raise RuntimeError("the switch's event loop cannot stop itself; stop it from outside")
        with contextlib.suppress(RuntimeError):  # it closed meanwhile
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._thread.join()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()  # where LangChain runs sync tools
        self._loop.call_soon(self._loop.stop)


async def _pump(open_events: Callable[[], AsyncIterator[T]], put: Callable[[object], None]) -> None:
    """Move each event to ``put``, then ``_END`` or the ``_Failure``; a cancelled pump puts a
    failure too, so that a consumer still waiting is released."""
    terminal: object = _Failure(RuntimeError("the stream was cancelled in the switch's loop"))
    events = open_events()
    try:
        async for event in events:
            put(event)
        terminal = _END
    except Exception as exc:
        terminal = _Failure(exc)
    finally:
        if isinstance(events, AsyncGenerator):
            await events.aclose()  # its cleanup (e.g. the expert's stream) runs now, here
        put(terminal)


_LOOPS: weakref.WeakKeyDictionary[Switch, SwitchLoop] = weakref.WeakKeyDictionary()
_LOOPS_LOCK = threading.Lock()


def loop_for(switch: Switch) -> SwitchLoop:
    """The loop of ``switch``, started on first use; every chat model over it shares it.

    When the switch is garbage-collected its loop is stopped (the entry is weak)."""
    with _LOOPS_LOCK:
        loop = _LOOPS.get(switch)
        if loop is None or not loop.running:
            loop = _LOOPS[switch] = SwitchLoop()
            weakref.finalize(switch, _stop_later, loop)
        return loop


def close_switch(switch: Switch) -> None:
    """Close ``switch`` in its loop (where its experts' connections were opened), then stop
    the loop; a later call starts a new one."""
    with _LOOPS_LOCK:
        loop = _LOOPS.pop(switch, None)
    loop = loop if loop is not None and loop.running else SwitchLoop()
    try:
        loop.call(switch.aclose)
    finally:
        loop.stop()


def _stop_later(loop: SwitchLoop) -> None:
    # A finalizer may run in any thread, the loop's own included: stop it from a new one.
    threading.Thread(target=loop.stop, name="skillswitch-langchain-stop", daemon=True).start()
