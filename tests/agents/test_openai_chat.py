from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from skillswitch.agents import (
    ExpertReply,
    Message,
    OpenAIChatExpert,
    Prices,
    SamplingSettings,
    TextDelta,
)
from skillswitch.exceptions import (
    ExpertHTTPError,
    ExpertResponseError,
    ExpertTimeoutError,
    ExpertUnavailableError,
)
from tests.support.faulty_upstream import FaultKind, FaultyUpstream
from tests.support.servers import serve

pytestmark = pytest.mark.anyio
ASK = [Message("system", "be brief"), Message("user", "what is two plus two")]


async def test_answer_carries_usage_and_cost(upstream: str) -> None:
    async with OpenAIChatExpert(
        "echo", upstream, "echo", prices=Prices(input_per_million=2.0, output_per_million=10.0)
    ) as expert:
        reply = await expert.answer(ASK)
    assert reply.text == "echo: what is two plus two"
    assert reply.usage.prompt_tokens == 7
    assert reply.usage.completion_tokens == 6
    assert reply.usage.cost == pytest.approx((7 * 2.0 + 6 * 10.0) / 1e6)
    assert reply.finish_reason == "stop"
    assert reply.latency_ms > 0


async def test_only_set_sampling_parameters_are_sent(upstream_app: tuple[str, Any]) -> None:
    url, app = upstream_app
    sampling = SamplingSettings(temperature=0.2, max_tokens=50)
    async with OpenAIChatExpert("e", url, "echo", sampling=sampling) as expert:
        await expert.answer(ASK)
    sent = app.state.requests[-1]
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50
    assert "top_p" not in sent
    assert "seed" not in sent


async def test_stream_yields_deltas_then_the_reply(upstream: str) -> None:
    async with OpenAIChatExpert("echo", upstream, "echo", prices=Prices(1.0, 1.0)) as expert:
        events = [event async for event in expert.stream(ASK)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    final = events[-1]
    assert isinstance(final, ExpertReply)
    assert "".join(deltas) == final.text == "echo: what is two plus two"
    assert final.usage.total_tokens == 13


@pytest.mark.parametrize(
    ("model", "status", "retryable"), [("fail-500", 500, True), ("fail-400", 400, False)]
)
async def test_http_errors_keep_status_and_retryability(
    upstream: str, model: str, status: int, retryable: bool
) -> None:
    async with OpenAIChatExpert("x", upstream, model) as expert:
        with pytest.raises(ExpertHTTPError) as caught:
            await expert.answer(ASK)
    assert caught.value.status == status
    assert caught.value.retryable is retryable
    assert "injected failure" in caught.value.body
    assert caught.value.expert == "x"


async def test_rate_limit_reports_retry_after(upstream: str) -> None:
    async with OpenAIChatExpert("x", upstream, "rate-limit") as expert:
        with pytest.raises(ExpertHTTPError) as caught:
            await expert.answer(ASK)
    assert caught.value.status == 429
    assert caught.value.retry_after_s == 2.0
    assert caught.value.retryable


async def test_a_stalled_upstream_times_out(upstream: str) -> None:
    async with OpenAIChatExpert("slow", upstream, "stall", timeout_s=0.5) as expert:
        with pytest.raises(ExpertTimeoutError, match=r"no answer within 0\.5 s"):
            await expert.answer(ASK)


@pytest.mark.parametrize(
    ("model", "fragment"), [("malformed", "unusable response"), ("empty", "empty")]
)
async def test_unusable_replies_are_response_errors(
    upstream: str, model: str, fragment: str
) -> None:
    async with OpenAIChatExpert("x", upstream, model) as expert:
        with pytest.raises(ExpertResponseError, match=fragment):
            await expert.answer(ASK)


async def test_a_stream_that_dies_midway_is_an_error_not_a_short_answer(upstream: str) -> None:
    received: list[str] = []

    async def consume(expert: OpenAIChatExpert) -> None:
        async for event in expert.stream(ASK):
            if not isinstance(event, TextDelta):
                pytest.fail("a reply must not be produced from a broken stream")
            received.append(event.text)

    async with OpenAIChatExpert("x", upstream, "drop-stream") as expert:
        with pytest.raises((ExpertUnavailableError, ExpertResponseError)):
            await consume(expert)
    assert "".join(received) == "echo: what"


async def test_unreachable_endpoint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIChatExpert("gone", f"http://127.0.0.1:{port}/v1", "m", timeout_s=5) as expert:
        with pytest.raises(ExpertUnavailableError, match="cannot reach"):
            await expert.answer(ASK)


def test_one_expert_serves_callers_in_several_event_loops(upstream: str) -> None:
    """Connections belong to the loop that opened them: each loop gets its own client (and
    closes its own), so asyncio.run twice, or threads with loops of their own, all get
    answers while other loops' clients stay open."""
    expert = OpenAIChatExpert("e", upstream, "echo")

    async def ask() -> str:
        try:
            return (await expert.answer(ASK)).text
        finally:
            await expert.aclose()

    texts = [asyncio.run(ask()) for _ in range(2)]
    with ThreadPoolExecutor(4) as pool:
        texts += pool.map(lambda _: asyncio.run(ask()), range(8))
    assert texts == ["echo: what is two plus two"] * 10


@pytest.mark.parametrize(
    ("fault", "stream", "cause"),
    [
        ("reset", False, "Connection reset by peer"),
        ("reset", True, "Connection reset by peer"),
        ("stream_dies", False, "peer closed connection"),
        ("stream_dies", True, "peer closed connection"),
    ],
)
async def test_a_broken_connection_says_how_it_broke(
    fault: FaultKind, stream: bool, cause: str
) -> None:
    """Regression: a reset or a response cut midway read "cannot reach <url>: Connection
    error." (the SDK's words), though the endpoint was reached."""
    upstream = FaultyUpstream(rate=0.0)
    upstream.force["m"] = fault

    async def call(expert: OpenAIChatExpert) -> None:
        if not stream:
            await expert.answer(ASK)
        async for _ in expert.stream(ASK):
            pass

    with serve(upstream) as url:
        async with OpenAIChatExpert("x", f"{url}/v1", "m") as expert:
            with pytest.raises(ExpertUnavailableError) as caught:
                await call(expert)
    message = str(caught.value)
    assert f"the connection to {url}/v1 broke before the answer was complete" in message
    assert cause in message
    assert "cannot reach" not in message
