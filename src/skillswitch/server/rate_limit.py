"""Requests per second per client: a token bucket per client address.

Each client (its address as the server sees it: behind a proxy, every request shares the
proxy's) may send ``per_second`` requests on average and ``burst`` at once; beyond that it is
refused with the seconds until its next token, for a ``Retry-After`` header. Buckets of idle
clients are dropped once ``max_clients`` are tracked, so memory stays bounded whatever the
number of addresses.

>>> limiter = RateLimiter(per_second=2, burst=2, clock=lambda: 0.0)
>>> [limiter.wait_for("10.0.0.1") for _ in range(3)]
[0.0, 0.0, 0.5]
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        *,
        burst: int | None = None,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"per_second is {per_second}; give a rate above 0 requests/s")
        self.per_second = per_second
        self.burst = burst if burst is not None else max(1, int(per_second * 2))
        if self.burst < 1:
            raise ValueError(f"burst is {self.burst}; give 1 or more")
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def wait_for(self, client: str) -> float:
        """Take a token for ``client``: 0.0 when it may go now, else the seconds until it may
        (no token is taken then)."""
        now = self._clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.per_second
        self._buckets[client] = (tokens, now)  # most recent last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)  # the longest idle: its bucket would be full
        return wait
