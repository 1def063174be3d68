"""Fault injection through ``skillswitch serve``: an upstream that fails at a seeded rate (500s,
429s with Retry-After, stalls, resets, truncated JSON, streams that die midway), and what every
request gets: one answer or one clear error, never lost; retries within their budget; circuit
breakers that open and close; fallbacks for streams too (tests/reliability/harness.py).

``make soak`` runs the long version (tests/reliability/soak.py, 10,000 requests)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from tests.reliability.harness import (
    Load,
    Rig,
    Settings,
    budget_violations,
    run_load,
    running_rig,
    send_load,
)
from tests.support.faulty_upstream import FAULT_KINDS, FaultKind, FaultyUpstream
from tests.support.servers import serve

BOUNDED_REQUESTS = 400
FAULT_RATE = 0.2


def ask(request_id: str) -> list[Any]:
    return [{"role": "user", "content": f"[req {request_id}] what is 2 plus 2?"}]


@pytest.fixture
def client_for() -> Iterator[Any]:
    opened: list[openai.OpenAI] = []

    def make(rig: Rig) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{rig.url}/v1", api_key="unused", max_retries=0)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


# --- the upstream injects what it says ------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
def test_the_upstream_injects_each_fault_as_a_client_sees_it(streamed: bool) -> None:
    upstream = FaultyUpstream(rate=0.0, stall_s=5, retry_after="3")
    seen: dict[str, Any] = {}
    with serve(upstream) as url, httpx.Client(base_url=url, timeout=1.0) as client:
        for kind in (*FAULT_KINDS, None):
            upstream.force["m"] = kind
            body = {"model": "m", "messages": ask(f"x-{kind}"), "stream": streamed}
            try:
                response = client.post("/v1/chat/completions", json=body)
                seen[str(kind)] = (response.status_code, response.headers, response.text)
            except httpx.HTTPError as exc:
                seen[str(kind)] = exc
    assert seen["http_500"][0] == 500
    status, headers, _ = seen["rate_limit_429"]
    assert (status, headers["retry-after"]) == (429, "3")
    assert isinstance(seen["stall"], httpx.ReadTimeout)
    # a real TCP reset, not a closed connection or an error status
    assert isinstance(seen["reset"], httpx.ReadError)
    assert "Connection reset by peer" in str(seen["reset"])
    assert isinstance(seen["stream_dies"], httpx.RemoteProtocolError)
    assert "peer closed connection" in str(seen["stream_dies"])
    status, _, text = seen["truncated_json"]
    assert status == 200
    events = [line.removeprefix("data: ") for line in text.splitlines() if line]
    with pytest.raises(json.JSONDecodeError):
        [json.loads(event) for event in (events if streamed else [text])]
    status, _, text = seen["None"]
    assert status == 200
    assert "x-None]" in text
    assert upstream.injected == Counter(FAULT_KINDS)
    assert upstream.answered == 1


def test_faults_are_drawn_per_request_at_the_rate_from_the_seed() -> None:
    one, same, other = (FaultyUpstream(rate=0.2, seed=s) for s in (7, 7, 8))
    draws = [one.fault_for(f"r{i}", "m", 1) for i in range(5000)]
    assert draws == [same.fault_for(f"r{i}", "m", 1) for i in range(5000)]
    assert draws != [other.fault_for(f"r{i}", "m", 1) for i in range(5000)]
    faults = Counter(d for d in draws if d is not None)
    assert 0.18 < sum(faults.values()) / len(draws) < 0.22
    assert set(faults) == set(FAULT_KINDS)


def test_the_harness_counts_as_lost_what_a_broken_server_does() -> None:
    """Sent straight to the faulty upstream (no skillswitch in front): its 500s, resets and
    broken streams are lost requests, its clean answers answered; the check is not vacuous."""
    upstream = FaultyUpstream(rate=0.5, seed=3, kinds=["http_500", "reset", "stream_dies"])
    with serve(upstream) as url:
        outcomes = anyio.run(send_load, url, Load(60, concurrency=8, seed=3))
    verdicts = Counter(o.verdict for o in outcomes)
    assert verdicts["lost"] == sum(upstream.injected.values()) > 0
    assert verdicts["answered"] == upstream.answered > 0
    assert verdicts["clear_error"] == 0  # its errors name no expert
    lost = " ".join(o.detail for o in outcomes if o.verdict == "lost")
    assert "unclear error" in lost  # the 500s
    assert "APIConnectionError" in lost  # resets, and responses cut midway


# --- the bounded load: nothing lost ---------------------------------------------------------


@pytest.fixture(scope="module")
def load_rig(cache_root: Path) -> Iterator[Rig]:
    with running_rig(rate=FAULT_RATE, seed=2026, cache_dir=cache_root) as rig:
        yield rig


@pytest.mark.timeout(180)
def test_no_request_is_lost_at_a_20_percent_fault_rate(load_rig: Rig) -> None:
    outcomes, report = anyio.run(
        run_load, load_rig, Load(BOUNDED_REQUESTS, concurrency=16, seed=2026)
    )
    print("\n" + report.table())
    assert report.lost == 0, report.lost_examples
    assert report.sent == BOUNDED_REQUESTS
    assert report.answered + report.clear_errors == BOUNDED_REQUESTS
    assert budget_violations(load_rig.upstream, outcomes, load_rig.settings) == []
    # every kind of fault was met, most requests were answered anyway
    assert all(report.injected[kind] > 0 for kind in FAULT_KINDS), report.injected
    assert report.answered >= 0.9 * BOUNDED_REQUESTS
    streamed = [o for o in outcomes if o.streamed]
    assert 0.4 * BOUNDED_REQUESTS < len(streamed) < 0.6 * BOUNDED_REQUESTS
    assert report.extra_calls > 0  # retries and fallbacks did the work
    # a clear error names the expert: the upstream's failure after text went out (a stream
    # cannot take back its text), or every expert failed
    for o in outcomes:
        if o.verdict == "clear_error":
            assert "expert '" in o.detail


# --- fallbacks for streams, budgets, Retry-After --------------------------------------------

PRE_TOKEN_FAULTS: list[FaultKind] = ["http_500", "rate_limit_429", "reset", "stall"]


@pytest.fixture(scope="module")
def fallback_rig(cache_root: Path) -> Iterator[Rig]:
    settings = Settings(timeout_s=0.3, breaker_failures=1000, retry_base_delay_s=0.01)
    with running_rig(
        rate=0.0, seed=1, cache_dir=cache_root, settings=settings, retry_after="0.2"
    ) as rig:
        yield rig


@pytest.mark.parametrize("fault", PRE_TOKEN_FAULTS)
def test_a_stream_whose_expert_fails_before_its_first_token_is_answered_by_the_fallback(
    fallback_rig: Rig, client_for: Any, fault: FaultKind
) -> None:
    rig = fallback_rig
    rig.upstream.force["math-a"] = fault
    try:
        stream = client_for(rig).chat.completions.create(
            model="skillswitch/math", messages=ask(f"fb-{fault}"), stream=True
        )
        chunks = list(stream)
    finally:
        rig.upstream.force.pop("math-a")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: [req fb-{fault}] what is 2 plus 2?"
    # the fallback streamed token by token, not one delta at the end
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) > 3
    trace = (chunks[-1].model_extra or {})["skillswitch"]
    failed, answered = trace["results"]
    assert (failed["expert"], failed["ok"], failed["fallback_for"]) == ("math-a", False, None)
    assert [a["outcome"] for a in failed["attempts"]] == ["error"] * rig.settings.retry_attempts
    assert (answered["expert"], answered["ok"], answered["fallback_for"]) == (
        "math-b",
        True,
        "math-a",
    )
    # within budget: the primary asked retry_attempts times in all, the fallback once
    calls = rig.upstream.received_for(f"fb-{fault}")
    assert calls == {"math-a": rig.settings.retry_attempts, "math-b": 1}
    if fault == "rate_limit_429":
        assert all(a["waited_ms"] >= 200 for a in failed["attempts"][1:])


@pytest.mark.parametrize("streamed", [False, True])
def test_every_expert_failing_gives_one_clear_error_naming_each(
    fallback_rig: Rig, client_for: Any, streamed: bool
) -> None:
    rig = fallback_rig
    rig.upstream.force.update({"math-a": "http_500", "math-b": "reset"})
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            # a stream that fails before any text gets its status, not a 200 that breaks
            client_for(rig).chat.completions.create(
                model="skillswitch/math", messages=ask(f"both-{streamed}"), stream=streamed
            )
    finally:
        rig.upstream.force.pop("math-a")
        rig.upstream.force.pop("math-b")
    error = caught.value
    assert error.status_code == 502
    message = error.message
    assert "expert 'math-a': HTTP 500" in message
    assert "expert 'math-b'" in message
    assert "reset" in message.lower()
    trace = error.body["skillswitch"]  # type: ignore[index]
    assert [r["expert"] for r in trace["results"]] == ["math-a", "math-b"]
    attempts = rig.settings.retry_attempts
    assert rig.upstream.received_for(f"both-{streamed}") == {"math-a": attempts, "math-b": attempts}


def test_a_stream_that_dies_after_its_first_token_ends_with_a_clear_error(
    fallback_rig: Rig, client_for: Any
) -> None:
    rig = fallback_rig
    upstream = rig.upstream
    # find a request id whose stream dies after some text (the cut is drawn from the seed)
    request_id = next(
        f"dies-{i}"
        for i in range(100)
        if upstream_cut(upstream, f"dies-{i}") > 0.25  # at least one word out first
    )
    upstream.force["math-a"] = "stream_dies"
    parts: list[str] = []

    def read() -> None:
        for chunk in client_for(rig).chat.completions.create(
            model="skillswitch/math", messages=ask(request_id), stream=True
        ):
            parts.extend(c.delta.content or "" for c in chunk.choices)

    try:
        with pytest.raises(openai.APIError) as caught:
            read()
    finally:
        upstream.force.pop("math-a")
    assert "".join(parts).startswith("echo:")
    assert "expert 'math-a'" in caught.value.message
    assert "broke" in caught.value.message  # not "cannot reach": the expert was reached
    assert upstream.received_for(request_id) == {"math-a": 1}  # text went out: no retry


def upstream_cut(upstream: FaultyUpstream, request_id: str) -> float:
    return random.Random(f"{upstream.seed}:{request_id}:math-a:1:cut").random()


# --- circuit breakers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def breaker_rig(cache_root: Path) -> Iterator[Rig]:
    settings = Settings(breaker_failures=3, breaker_cooldown_s=0.5, retry_base_delay_s=0.01)
    with running_rig(rate=0.0, seed=1, cache_dir=cache_root, settings=settings) as rig:
        yield rig


def test_a_breaker_opens_after_repeated_failures_and_closes_after_the_cooldown(
    breaker_rig: Rig, client_for: Any
) -> None:
    rig = breaker_rig
    client = client_for(rig)
    breaker = rig.switch.dispatcher.breaker("math-a")
    rig.upstream.force["math-a"] = "http_500"  # down, 100%

    def outcomes_of(trace: dict[str, Any]) -> list[tuple[str, list[str]]]:
        return [(r["expert"], [a["outcome"] for a in r["attempts"]]) for r in trace["results"]]

    first = client.chat.completions.create(model="skillswitch/math", messages=ask("br-1"))
    assert outcomes_of(first.model_extra["skillswitch"]) == [  # type: ignore[index]
        ("math-a", ["error", "error", "error"]),
        ("math-b", ["ok"]),
    ]
    assert breaker.state == "open"
    # open: neither a request nor a stream calls it; the fallback answers at once
    second = client.chat.completions.create(model="skillswitch/math", messages=ask("br-2"))
    assert outcomes_of(second.model_extra["skillswitch"]) == [  # type: ignore[index]
        ("math-a", ["circuit_open"]),
        ("math-b", ["ok"]),
    ]
    chunks = list(
        client.chat.completions.create(model="skillswitch/math", messages=ask("br-3"), stream=True)
    )
    assert outcomes_of(chunks[-1].model_extra["skillswitch"]) == [  # type: ignore[index]
        ("math-a", ["circuit_open"]),
        ("math-b", ["ok"]),
    ]
    assert rig.upstream.received_for("br-2") == {"math-b": 1}
    assert rig.upstream.received_for("br-3") == {"math-b": 1}

    # the upstream recovers; after the cooldown one trial goes through and closes the breaker
    rig.upstream.force.pop("math-a")
    wait_until_half_open(breaker)
    recovered = client.chat.completions.create(model="skillswitch/math", messages=ask("br-4"))
    assert outcomes_of(recovered.model_extra["skillswitch"]) == [("math-a", ["ok"])]  # type: ignore[index]
    assert breaker.state == "closed"
    streamed = list(
        client.chat.completions.create(model="skillswitch/math", messages=ask("br-5"), stream=True)
    )
    assert outcomes_of(streamed[-1].model_extra["skillswitch"]) == [("math-a", ["ok"])]  # type: ignore[index]


def wait_until_half_open(breaker: Any, timeout: float = 10.0) -> None:
    """The cooldown is time: poll the breaker's state, within a bound."""
    deadline = time.monotonic() + timeout
    while breaker.state != "half_open":
        assert time.monotonic() < deadline, f"still {breaker.state} after {timeout} s"
        time.sleep(0.02)


def test_streams_count_towards_the_breaker(breaker_rig: Rig, client_for: Any) -> None:
    rig = breaker_rig
    breaker = rig.switch.dispatcher.breaker("lang-a")
    rig.upstream.force["lang-a"] = "reset"
    try:
        chunks = list(
            client_for(rig).chat.completions.create(
                model="skillswitch/translation", messages=ask("br-s1"), stream=True
            )
        )
    finally:
        rig.upstream.force.pop("lang-a")
    assert breaker.state == "open"
    trace = chunks[-1].model_extra["skillswitch"]  # type: ignore[index]
    assert [r["expert"] for r in trace["results"]] == ["lang-a", "lang-b"]
    assert rig.upstream.received_for("br-s1") == {"lang-a": 3, "lang-b": 1}
    wait_until_half_open(breaker)
