"""The fault-injection harness: requests through ``skillswitch serve`` to experts that misbehave.

A rig is the real server, ``create_app(switch)`` on loopback with its lifespan on, in front of a
``FaultyUpstream`` (tests/support/faulty_upstream.py) that serves every expert: two experts per
skill, the first failing over to the second, with retries, per-expert timeouts, circuit breakers
and a per-request deadline. The load is N requests sent concurrently (bounded) with the official
``openai`` client, about half of them streamed, each classified:

- ``answered``: a 200 whose text answers this very request (the upstream echoes the request id)
  with a finish_reason; streamed, it ended with ``data: [DONE]`` after a finish_reason;
- ``clear_error``: an OpenAI-shaped error (status before the stream, or an error event in it)
  whose message names the expert(s) that failed, never a 500;
- ``lost``: anything else: no answer within the bound, a 500, a connection error, a stream
  that ended without [DONE] or without an error, a reply without the text.

Used by tests/reliability/test_faults.py (bounded) and tests/reliability/soak.py (long).
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import openai

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.faulty_upstream import FAULT_KINDS, FaultKind, FaultyUpstream
from tests.support.servers import serve

Verdict = Literal["answered", "clear_error", "lost"]

# Skill -> (primary, fallback). The upstream's model name is the expert's name.
EXPERTS: dict[str, tuple[str, str]] = {
    "math": ("math-a", "math-b"),
    "translation": ("lang-a", "lang-b"),
}
EXPERT_NAMES = tuple(name for pair in EXPERTS.values() for name in pair)
FALLBACKS = {primary: (fallback,) for primary, fallback in EXPERTS.values()}


@dataclass(frozen=True)
class Settings:
    """The dispatch settings of the rig's config (see DispatchConfig and ExpertConfig)."""

    retry_attempts: int = 3
    retry_base_delay_s: float = 0.02
    retry_max_delay_s: float = 0.5
    timeout_s: float = 1.0
    deadline_s: float = 10.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 1.0

    def budget(self, expert: str) -> int:
        """The most upstream calls one request may cause: each expert it may reach (itself
        and its fallbacks) tried ``retry_attempts`` times at most."""
        return self.retry_attempts * (1 + len(FALLBACKS.get(expert, ())))


def config_text(upstream_v1: str, settings: Settings) -> str:
    lines = ["experts:"]
    for skill, (primary, fallback) in EXPERTS.items():
        for name, extra in ((primary, f", fallbacks: [{fallback}]"), (fallback, "")):
            lines.append(
                f"  - {{name: {name}, base_url: '{upstream_v1}', model: {name}, "
                f"skills: [{skill}], timeout_s: {settings.timeout_s}{extra}}}"
            )
    s = settings
    lines.append(
        f"dispatch: {{max_experts: 1, retry_attempts: {s.retry_attempts}, "
        f"retry_base_delay_s: {s.retry_base_delay_s}, retry_max_delay_s: {s.retry_max_delay_s}, "
        f"deadline_s: {s.deadline_s}, breaker_failures: {s.breaker_failures}, "
        f"breaker_cooldown_s: {s.breaker_cooldown_s}}}"
    )
    return DEFAULT_SKILLS + "\n".join(lines) + "\n"


@dataclass
class Rig:
    url: str
    """The server's base URL (``/v1`` is below it)."""
    upstream: FaultyUpstream
    switch: Switch
    settings: Settings


@contextmanager
def running_rig(
    *,
    rate: float,
    seed: int,
    cache_dir: Path,
    settings: Settings | None = None,
    kinds: Sequence[FaultKind] = FAULT_KINDS,
    retry_after: str = "1",
) -> Iterator[Rig]:
    """The faulty upstream and ``skillswitch serve`` in front of it, both on loopback."""
    settings = settings or Settings()
    upstream = FaultyUpstream(
        rate=rate,
        seed=seed,
        kinds=kinds,
        retry_after=retry_after,
        stall_s=settings.deadline_s * 3,
    )
    with serve(upstream) as upstream_url:
        config = parse_config(config_text(f"{upstream_url}/v1", settings))
        switch = Switch.from_config(config, cache_dir=cache_dir)
        with serve(create_app(switch), lifespan="on") as url:
            yield Rig(url, upstream, switch, settings)


@dataclass(frozen=True)
class Outcome:
    """What one request got."""

    request_id: str
    model: str
    streamed: bool
    verdict: Verdict
    latency_s: float
    status: int | None = None
    detail: str = ""
    trace: Mapping[str, Any] | None = None


@dataclass
class Load:
    """A load's requests: ``count`` of them, ``concurrency`` at once, a share streamed; the
    mix (skill, streamed) is drawn from ``seed``."""

    count: int
    concurrency: int = 16
    stream_share: float = 0.5
    seed: int = 0
    bound_s: float = 60.0
    """A request that has no outcome after this long is lost (a hang)."""
    prefix: str = "r"

    def requests(self) -> list[tuple[str, str, bool]]:
        draw = random.Random(self.seed)
        skills = sorted(EXPERTS)
        return [
            (
                f"{self.prefix}{index:05d}",
                f"skillswitch/{draw.choice(skills)}",
                draw.random() < self.stream_share,
            )
            for index in range(self.count)
        ]


class _DoneWatcher(httpx2.AsyncBaseTransport):
    """Records, per harness request id (a header), whether its response body ended with
    ``data: [DONE]``: the openai client ends a stream the same way with or without it."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._inner = httpx2.AsyncHTTPTransport(limits=limits)
        self.done: dict[str, bool] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        request_id = request.headers.get("x-harness-id")
        if request_id is None:
            return response
        self.done[request_id] = False
        inner = response.stream
        done = self.done

        class Watched(httpx2.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                tail = b""
                async for chunk in inner:  # type: ignore[union-attr]
                    tail = (tail + chunk)[-64:]
                    done[request_id] = tail.rstrip().endswith(b"data: [DONE]")
                    yield chunk

            async def aclose(self) -> None:
                await inner.aclose()  # type: ignore[union-attr]

        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=Watched(),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


async def send_load(url: str, load: Load) -> list[Outcome]:
    """Send the load's requests through ``url`` and classify every outcome."""
    limits = httpx2.Limits(max_connections=load.concurrency, max_keepalive_connections=None)
    watcher = _DoneWatcher(limits)
    outcomes: list[Outcome] = []
    gate = anyio.Semaphore(load.concurrency)
    async with (
        httpx2.AsyncClient(transport=watcher, timeout=load.bound_s) as http,
        openai.AsyncOpenAI(
            base_url=f"{url}/v1", api_key="unused", max_retries=0, http_client=http
        ) as client,
    ):

        async def one(request_id: str, model: str, streamed: bool) -> None:
            async with gate:
                outcomes.append(await _send(client, watcher, load, request_id, model, streamed))

        async with anyio.create_task_group() as group:
            for request_id, model, streamed in load.requests():
                group.start_soon(one, request_id, model, streamed)
    return sorted(outcomes, key=lambda o: o.request_id)


async def _send(
    client: openai.AsyncOpenAI,
    watcher: _DoneWatcher,
    load: Load,
    request_id: str,
    model: str,
    streamed: bool,
) -> Outcome:
    started = time.perf_counter()
    text = f"[req {request_id}] what is {len(request_id)} plus {request_id[-2:]}?"
    headers = {"x-harness-id": request_id}
    messages: Any = [{"role": "user", "content": text}]

    def outcome(verdict: Verdict, **extra: Any) -> Outcome:
        elapsed = time.perf_counter() - started
        return Outcome(request_id, model, streamed, verdict, elapsed, **extra)

    try:
        with anyio.fail_after(load.bound_s + 5):
            if not streamed:
                completion = await client.chat.completions.create(
                    model=model, messages=messages, extra_headers=headers
                )
                choice = completion.choices[0]
                trace = (completion.model_extra or {}).get("skillswitch")
                if f"[req {request_id}]" in (choice.message.content or "") and (
                    choice.finish_reason
                ):
                    return outcome("answered", status=200, trace=trace)
                return outcome("lost", status=200, detail=f"no answer text: {choice!r}")
            parts: list[str] = []
            finish = None
            trace = None
            stream = await client.chat.completions.create(
                model=model, messages=messages, stream=True, extra_headers=headers
            )
            async for chunk in stream:
                for piece in chunk.choices:
                    parts.append(piece.delta.content or "")
                    finish = piece.finish_reason or finish
                trace = (chunk.model_extra or {}).get("skillswitch") or trace
            done = watcher.done.get(request_id, False)
            if done and finish and f"[req {request_id}]" in "".join(parts):
                return outcome("answered", status=200, trace=trace)
            return outcome(
                "lost",
                status=200,
                detail=f"stream ended: [DONE] {done}, finish_reason {finish}, text {parts!r}",
            )
    except TimeoutError:
        return outcome("lost", detail=f"no outcome within {load.bound_s + 5:g} s")
    except openai.APIStatusError as exc:
        return _error_outcome(outcome, exc.status_code, exc.body)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        return outcome("lost", detail=f"{type(exc).__name__}: {exc!r} {exc.__cause__!r}")
    except openai.APIError as exc:  # an error event in the stream
        return _error_outcome(outcome, None, exc.body)
    except Exception as exc:  # every other failure is a lost request, named
        return outcome("lost", detail=f"{type(exc).__name__}: {exc}")


def _error_outcome(outcome: Any, status: int | None, body: object) -> Outcome:
    """A clear error: an OpenAI error object whose message names the failing expert(s); a
    status, if any, 4xx or 5xx but not 500 (an internal error)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    trace = error.get("skillswitch") if isinstance(error, dict) else None
    shaped = isinstance(message, str) and {"type", "code"} <= set(error or {})
    names_expert = isinstance(message, str) and any(f"'{n}'" in message for n in EXPERT_NAMES)
    if shaped and names_expert and status != 500 and (status is None or status >= 400):
        result: Outcome = outcome("clear_error", status=status, detail=str(message), trace=trace)
        return result
    lost: Outcome = outcome("lost", status=status, detail=f"unclear error: {body!r}")
    return lost


# --- what the upstream saw ------------------------------------------------------------------


def budget_violations(
    upstream: FaultyUpstream, outcomes: Sequence[Outcome], settings: Settings
) -> list[str]:
    """Requests whose upstream calls went past the retry budget: more than ``retry_attempts``
    calls to one expert, or more than ``retry_attempts x (1 + fallbacks)`` in all."""
    found = []
    for o in outcomes:
        calls = upstream.received_for(o.request_id)
        primary = EXPERTS[o.model.removeprefix("skillswitch/")][0]
        over = {m: n for m, n in calls.items() if n > settings.retry_attempts}
        if over or sum(calls.values()) > settings.budget(primary):
            found.append(
                f"{o.request_id} ({'streamed' if o.streamed else 'not streamed'}): {calls}"
            )
    return found


@dataclass
class Report:
    """The counts of one load, and what the upstream injected."""

    sent: int
    answered: int
    clear_errors: int
    clear_errors_mid_stream: int
    """Of the clear errors, those sent as an error event after a stream's text went out."""
    lost: int
    fault_rate: float
    injected: dict[str, int]
    upstream_calls: int
    extra_calls: int
    """Upstream calls beyond one per request: retries and fallbacks."""
    budget_violations: int
    fallback_answers: int
    latency_p50_ms: float
    latency_p99_ms: float
    wall_s: float
    streamed: int
    lost_examples: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        outcomes: Sequence[Outcome],
        upstream: FaultyUpstream,
        settings: Settings,
        wall_s: float,
    ) -> Report:
        verdicts = Counter(o.verdict for o in outcomes)
        latencies = sorted(o.latency_s * 1000 for o in outcomes)
        return cls(
            sent=len(outcomes),
            answered=verdicts["answered"],
            clear_errors=verdicts["clear_error"],
            clear_errors_mid_stream=sum(
                o.verdict == "clear_error" and o.status is None for o in outcomes
            ),
            lost=verdicts["lost"],
            fault_rate=upstream.rate,
            injected={kind: upstream.injected[kind] for kind in FAULT_KINDS},
            upstream_calls=upstream.requests,
            extra_calls=upstream.requests - len(outcomes),
            budget_violations=len(budget_violations(upstream, outcomes, settings)),
            fallback_answers=sum(_answered_by_fallback(o) for o in outcomes),
            latency_p50_ms=_percentile(latencies, 50),
            latency_p99_ms=_percentile(latencies, 99),
            wall_s=wall_s,
            streamed=sum(o.streamed for o in outcomes),
            lost_examples=[f"{o.request_id}: {o.detail}" for o in outcomes if o.verdict == "lost"][
                :10
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            ("sent", f"{self.sent} ({self.streamed} streamed)"),
            ("answered", str(self.answered)),
            (
                "clear errors",
                f"{self.clear_errors} ({self.clear_errors_mid_stream} mid-stream, after text)",
            ),
            ("lost", str(self.lost)),
            ("fault rate", f"{self.fault_rate:.0%} per upstream call"),
            ("faults injected", str(sum(self.injected.values()))),
            *((f"  {kind}", str(n)) for kind, n in self.injected.items()),
            ("upstream calls", str(self.upstream_calls)),
            ("retries + fallback calls", str(self.extra_calls)),
            ("answered by a fallback", str(self.fallback_answers)),
            ("over the retry budget", str(self.budget_violations)),
            ("latency p50 / p99", f"{self.latency_p50_ms:.0f} / {self.latency_p99_ms:.0f} ms"),
            ("wall time", f"{self.wall_s:.1f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _answered_by_fallback(outcome: Outcome) -> bool:
    if outcome.verdict != "answered" or outcome.trace is None:
        return False
    return any(r.get("fallback_for") and r.get("error") is None for r in outcome.trace["results"])


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run_load(rig: Rig, load: Load) -> tuple[list[Outcome], Report]:
    started = time.perf_counter()
    outcomes = await send_load(rig.url, load)
    return outcomes, Report.of(outcomes, rig.upstream, rig.settings, time.perf_counter() - started)
