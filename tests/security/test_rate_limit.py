"""Requests per second per client: the token buckets alone (a fake clock), then
``create_app(rate_limit=...)`` on loopback (429, Retry-After, OpenAI's error shape; health stays
open)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.server.rate_limit import RateLimiter
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_the_rate_and_caps_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=4, burst=2, clock=clock)
    assert [limiter.wait_for("a") for _ in range(3)] == [0.0, 0.0, 0.25]
    assert limiter.wait_for("b") == 0.0  # clients have buckets of their own
    clock.now += 0.25  # one token back
    assert limiter.wait_for("a") == 0.0
    assert limiter.wait_for("a") == 0.25
    clock.now += 60  # idle: full again, but never above the burst
    assert [limiter.wait_for("a") for _ in range(3)] == [0.0, 0.0, 0.25]


def test_idle_clients_are_forgotten_first_so_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=1, burst=1, max_clients=3, clock=clock)
    for client in ("a", "b", "c"):
        limiter.wait_for(client)
    limiter.wait_for("a")  # a is busy again: b is now the longest idle
    limiter.wait_for("d")
    assert list(limiter._buckets) == ["c", "a", "d"]


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0)])
def test_bad_settings_are_refused_by_name(rate: float, burst: int | None) -> None:
    with pytest.raises(ValueError, match=r"per_second is|burst is"):
        RateLimiter(rate, burst=burst)


def test_serve_refuses_a_client_over_its_rate(upstream: str, cache_root: Path) -> None:
    experts = f"experts:\n  - {{name: helper, base_url: '{upstream}', model: echo}}\n"
    switch = Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)
    app = create_app(switch, rate_limit=1.0)
    with serve(app, lifespan="on") as base, httpx.Client(base_url=base, timeout=30) as client:
        statuses = [client.get("/v1/models").status_code for _ in range(3)]
        refused = client.get("/v1/models")
        health = client.get("/healthz")
    assert statuses[:2] == [200, 200]  # the burst: twice the rate
    assert statuses[2] == 429
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "1 per second per client (bursts of 2)" in error["message"]
    assert health.status_code == 200
