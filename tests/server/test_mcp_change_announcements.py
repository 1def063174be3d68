"""A tools-changed signal from the hub's thread never waits on the serving's event loop: that
loop may itself be waiting on the hub's thread (handing it a tool call), and a signal that
waited for it deadlocked both (seen under load in tests/reliability/test_mcp_faults.py, when a
crashed upstream restarted during a storm of tool calls)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from anyio.from_thread import BlockingPortal

from skillswitch.server.mcp import _Serving

pytestmark = pytest.mark.anyio


async def test_a_change_signal_returns_while_the_serving_loop_is_blocked() -> None:
    announced = anyio.Event()
    calls: list[str] = []

    async def announce(serving: _Serving) -> None:
        calls.append("announced")
        announced.set()

    async with BlockingPortal() as portal:
        serving = _Serving(portal, announce)
        loop_blocked = threading.Event()
        released = threading.Event()
        returned: list[float] = []

        def hub_thread() -> None:
            loop_blocked.wait(10)
            started = time.monotonic()
            serving.changed("upstream")
            serving.changed("upstream")  # coalesced: one announcement in flight
            returned.append(time.monotonic() - started)
            released.set()

        thread = threading.Thread(target=hub_thread)
        thread.start()
        # The serving's loop blocks (as it does while it hands the hub a call) until the hub's
        # thread has signalled: with a signal that waits for this loop, neither goes on.
        loop_blocked.set()
        assert released.wait(5), "changed() waited for the serving's event loop"
        thread.join(5)
        with anyio.fail_after(5):
            await announced.wait()
        assert returned[0] < 1
        await anyio.sleep(0.05)
        assert calls == ["announced"]
