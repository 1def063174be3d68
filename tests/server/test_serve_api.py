"""skillswitch serve: the switch behind an OpenAI-compatible server on loopback, driven by the
official ``openai`` client (sync, async, streaming) and by plain httpx for errors.

The experts are real OpenAI-compatible endpoints: the loopback upstream of tests/conftest.py
(tests/support/chat_app.py), whose model names choose its behaviour (``echo`` answers
``echo: <last message>`` word by word; ``fail-503`` fails; ``stall`` never answers in time;
``drop-stream`` dies mid-stream). The router is the default config's, with the real encoder.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from skillswitch.agents import FunctionExpert, Message
from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.cli import run
from tests.support.client_tools import WEATHER
from tests.support.configs import DEFAULT_SKILLS

KEY = "sk-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ERROR_FIELDS = {"message", "type", "param", "code"}
MAX_BODY = 64 * 1024
TRANSLATE = "translate good morning into French"

# One expert per skill it is tested on (max_experts 1), so that each route is predictable;
# calculator has prices (1 per prompt token, 2 per completion token) so that cost shows.
EXPERTS = """
experts:
  - {{name: calculator, base_url: '{u}', model: echo, skills: [math, unit_conversion],
      prices: {{input_per_million: 1000000, output_per_million: 2000000}}}}
  - {{name: polyglot, base_url: '{u}', model: echo, skills: [translation]}}
  - {{name: flaky, base_url: '{u}', model: fail-500, skills: [writing], fallbacks: [generalist]}}
  - {{name: broken, base_url: '{u}', model: fail-503, skills: [summarization]}}
  - {{name: sloth, base_url: '{u}', model: stall, skills: [brainstorming], timeout_s: 0.2}}
  - {{name: dropper, base_url: '{u}', model: drop-stream, skills: [smalltalk]}}
  - {{name: generalist, base_url: '{u}', model: echo}}
  - {{name: clock, kind: tool, tool: clock, skills: [datetime]}}
dispatch: {{max_experts: 1, retry_attempts: 2, retry_base_delay_s: 0.01, breaker_failures: 1000}}
"""


def config_text(upstream: str) -> str:
    return DEFAULT_SKILLS + EXPERTS.format(u=upstream)


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """tests.support.servers.serve with the app's lifespan on: its shutdown closes the switch
    in the server's event loop, where the experts' connections live."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30)
    if not server.started:
        raise RuntimeError("test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def switch(upstream: str, cache_root: Path) -> Switch:
    """Used by the server's thread only (the app's lifespan closes it)."""
    return Switch.from_config(parse_config(config_text(upstream)), cache_dir=cache_root)


@pytest.fixture(scope="module")
def url(switch: Switch) -> Iterator[str]:
    with serve_app(create_app(switch, api_key=KEY, max_body_bytes=MAX_BODY)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as opened:
        yield opened


@pytest.fixture
async def async_client(url: str) -> Any:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as opened:
        yield opened


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def trace_of(response: Any) -> dict[str, Any]:
    trace: dict[str, Any] = response.model_extra["skillswitch"]
    assert trace["schema"] == "skillswitch.trace/1"
    return trace


def experts_of(trace: dict[str, Any]) -> list[str]:
    return [selection["expert"] for selection in trace["experts"]]


def assert_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    # A failed run's error carries its trace (502, 504); client mistakes carry nothing more.
    extra = {"skillswitch"} if status in (502, 504) else set()
    assert set(body["error"]) == ERROR_FIELDS | extra
    for needle in needles:
        assert needle in body["error"]["message"], body["error"]["message"]
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={**AUTH, "Content-Type": "application/json", **headers},
        timeout=30,
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    response = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


# --- chat completions ----------------------------------------------------------------------


def test_routed_answer_equals_its_stream_and_carries_the_trace(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="skillswitch", messages=user(TRANSLATE)
    )
    assert (
        raw.headers["x-skillswitch-route"]
        == "route=auto;skill=translation;experts=polyglot;aggregator=pass_through"
    )
    answer = raw.parse()
    assert answer.object == "chat.completion"
    assert answer.model == "skillswitch"
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == f"echo: {TRANSLATE}"
    assert choice.finish_reason == "stop"
    trace = trace_of(answer)
    assert trace["routing"]["label"] == "translation"
    assert trace["routing"]["classifier"] != "forced"
    assert experts_of(trace) == ["polyglot"]
    assert [r["expert"] for r in trace["results"]] == ["polyglot"]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == trace["usage"]["prompt_tokens"] == 5
    assert answer.usage.completion_tokens == trace["usage"]["completion_tokens"] == 6
    assert answer.usage.total_tokens == 11

    with client.chat.completions.create(
        model="skillswitch",
        messages=user(TRANSLATE),
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == choice.message.content
    assert len([d for d in deltas if d]) > 1  # token by token from the one expert
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 5
    assert last.usage.completion_tokens == 6
    streamed = trace_of(last)
    assert streamed["routing"]["label"] == "translation"
    assert experts_of(streamed) == ["polyglot"]
    assert all("skillswitch" not in (c.model_extra or {}) for c in chunks[:-1])


def test_a_stream_without_usage_ends_with_the_trace_on_its_finish_chunk(
    client: openai.OpenAI,
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="skillswitch", messages=user(TRANSLATE), stream=True
    )
    # The route as planned comes first, in the header; the trace says how it ended.
    assert raw.headers["x-skillswitch-route"] == "route=auto;skill=translation;experts=polyglot"
    with raw.parse() as stream:
        chunks = list(stream)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is None
    assert experts_of(trace_of(last)) == ["polyglot"]


@pytest.mark.anyio
async def test_forcing_a_skill_routes_there(async_client: openai.AsyncOpenAI) -> None:
    # The router sends this to translation; the model names math.
    raw = await async_client.chat.completions.with_raw_response.create(
        model="skillswitch/math", messages=user(TRANSLATE)
    )
    assert (
        raw.headers["x-skillswitch-route"]
        == "route=skill;skill=math;experts=calculator;aggregator=pass_through"
    )
    answer = raw.parse()
    assert answer.model == "skillswitch/math"
    trace = trace_of(answer)
    assert trace["routing"]["skills"] == [{"skill": "math", "score": 1.0}]
    assert trace["routing"]["classifier"] == "forced"
    assert experts_of(trace) == ["calculator"]
    # calculator's prices: 1 per prompt token, 2 per completion token
    assert trace["usage"]["cost"] == pytest.approx(5 + 2 * 6)

    stream = await async_client.chat.completions.create(
        model="skillswitch/math", messages=user(TRANSLATE), stream=True
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    assert experts_of(trace_of(chunks[-1])) == ["calculator"]


@pytest.mark.anyio
async def test_an_expert_name_bypasses_routing(async_client: openai.AsyncOpenAI) -> None:
    raw = await async_client.chat.completions.with_raw_response.create(
        model="polyglot", messages=user("what is 17 times 23")
    )
    assert (
        raw.headers["x-skillswitch-route"]
        == "route=expert;skill=-;experts=polyglot;aggregator=pass_through"
    )
    answer = raw.parse()
    trace = trace_of(answer)
    assert trace["routing"]["classifier"] == "direct"
    assert trace["routing"]["encoder"] == "none"  # the router was not asked
    assert experts_of(trace) == ["polyglot"]
    assert answer.choices[0].message.content == "echo: what is 17 times 23"

    stream = await async_client.chat.completions.create(
        model="polyglot",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "what is 17 times 23"}]},
        ],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == "echo: what is 17 times 23"
    assert len([d for d in deltas if d]) > 1


def test_out_of_scope_requests_get_the_configured_reply(
    client: openai.OpenAI, upstream: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="skillswitch", messages=user("book me a flight to paris")
    )
    assert (
        raw.headers["x-skillswitch-route"]
        == "route=auto;skill=out_of_scope;experts=;aggregator=none"
    )
    answer = raw.parse()
    reply = parse_config(config_text(upstream)).out_of_scope.reply
    assert answer.choices[0].message.content == reply
    trace = trace_of(answer)
    assert trace["routing"]["out_of_scope"] is True
    assert trace["experts"] == []
    assert answer.usage is not None
    assert answer.usage.total_tokens == 0


def test_a_failed_expert_with_a_fallback_is_in_the_trace(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="skillswitch/writing", messages=user("write a poem about the sea")
    )
    assert answer.choices[0].message.content == "echo: write a poem about the sea"
    trace = trace_of(answer)
    assert experts_of(trace) == ["flaky"]
    failed, result = trace["results"]
    assert (failed["expert"], failed["ok"]) == ("flaky", False)
    assert "500" in failed["error"]
    assert [a["status"] for a in failed["attempts"]] == [500, 500]
    assert result["expert"] == "generalist"
    assert result["fallback_for"] == "flaky"
    assert result["ok"] is True


def test_models_are_routing_each_skill_and_each_expert(
    client: openai.OpenAI, switch: Switch
) -> None:
    ids = [model.id for model in client.models.list().data]
    skills = [f"skillswitch/{skill}" for skill in switch.router.skills]
    assert ids == ["skillswitch", *skills, *switch.expert_names]
    math = client.models.retrieve("skillswitch/math")
    assert math.model_extra is not None
    assert math.model_extra["kind"] == "skill"
    assert math.model_extra["experts"] == ["calculator", "generalist"]
    assert "Arithmetic" in math.model_extra["description"]
    expert = client.models.retrieve("polyglot")
    assert expert.model_extra is not None
    assert expert.model_extra["kind"] == "expert"
    with pytest.raises(openai.NotFoundError, match="did you mean 'polyglot'"):
        client.models.retrieve("polyglott")


def test_route_endpoint_equals_switch_route(url: str, switch: Switch) -> None:
    def without_timing(decision: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in decision.items() if k != "timing_ms"}

    for text in (TRANSLATE, "convert 5 miles to kilometers", "what time is it in Tokyo"):
        response = httpx.post(f"{url}/v1/route", json={"input": text}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert without_timing(response.json()) == without_timing(switch.route(text).to_dict())
    conversation = [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": TRANSLATE},
        {"role": "assistant", "content": "Bonjour."},
        {"role": "user", "content": "convert 5 miles to kilometers"},
    ]
    response = httpx.post(f"{url}/v1/route", json={"input": conversation}, headers=AUTH)
    assert response.status_code == 200, response.text
    expected = switch.route("convert 5 miles to kilometers").to_dict()
    assert without_timing(response.json()) == without_timing(expected)
    assert_error(
        httpx.post(f"{url}/v1/route", json={"input": []}, headers=AUTH), 400, "input is empty"
    )
    assert_error(
        httpx.post(f"{url}/v1/route", json={"text": "hi"}, headers=AUTH), 400, "input: is required"
    )
    # One message for a wrong kind, not one per member of the union (input.str, input.list[...])
    wrong = assert_error(
        httpx.post(f"{url}/v1/route", json={"input": 5}, headers=AUTH),
        400,
        "input: a text or a list of chat messages is needed, got int",
    )
    assert wrong["param"] == "input"


def test_metrics_count_the_requests_just_made(client: openai.OpenAI, url: str) -> None:
    before = scrape(url)
    for _ in range(2):
        client.chat.completions.create(model="calculator", messages=user("what is 2 plus 2"))
    client.chat.completions.create(
        model="skillswitch/writing", messages=user("write a poem about the sea")
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="calculater", messages=user("hi"))
    after = scrape(url)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    chat = "/v1/chat/completions"
    assert grew("skillswitch_requests_total", endpoint=chat, model="calculator", status="200") == 2
    assert grew("skillswitch_requests_total", endpoint=chat, model="unknown", status="404") == 1
    assert (
        grew("skillswitch_errors_total", endpoint=chat, status="404", code="model_not_found") == 1
    )
    assert grew("skillswitch_skill_duration_seconds_count", skill="-") == 2
    assert grew("skillswitch_skill_duration_seconds_count", skill="writing") == 1
    assert grew("skillswitch_expert_duration_seconds_count", expert="calculator") == 2
    # "what is 2 plus 2": 5 prompt tokens, "echo: what is 2 plus 2": 6 completion tokens
    assert grew("skillswitch_expert_tokens_total", expert="calculator", kind="prompt") == 10
    assert grew("skillswitch_expert_tokens_total", expert="calculator", kind="completion") == 12
    assert grew("skillswitch_expert_cost_total", expert="calculator") == pytest.approx(34)
    assert grew("skillswitch_cost_total", skill="-") == pytest.approx(34)
    assert grew("skillswitch_tokens_total", skill="writing", kind="completion") == 7
    assert grew("skillswitch_expert_errors_total", expert="flaky") == 2
    assert grew("skillswitch_expert_retries_total", expert="flaky") == 1
    assert grew("skillswitch_expert_duration_seconds_count", expert="generalist") == 1
    assert grew("skillswitch_request_duration_seconds_count", endpoint=chat) == 4


# --- errors --------------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def case(name: str, body: Any, status: int, param: str | None, *needles: str) -> Any:
    return pytest.param(body, status, param, needles, id=name)


ERROR_CASES = [
    case("bad-json", b'{"model": "skillswitch", ', 400, None, "not valid JSON"),
    case("empty-body", b"", 400, None, "the request body is empty"),
    case("not-an-object", [1, 2], 400, None, "a JSON array; send a JSON object"),
    case("no-model", {"messages": user("hi")}, 400, "model", "model: is required"),
    case(
        "unknown-model",
        {"model": "skilswitch", "messages": user("hi")},
        404,
        "model",
        "unknown model 'skilswitch'; did you mean 'skillswitch'",
    ),
    case(
        "unknown-skill",
        {"model": "skillswitch/maths", "messages": user("hi")},
        404,
        "model",
        "did you mean 'skillswitch/math'",
    ),
    case(
        "wrong-role",
        {"model": "skillswitch", "messages": [{"role": "robot", "content": "hi"}]},
        400,
        "messages[0].role",
        'role "robot" is not one of system, developer, user, assistant',
    ),
    case(
        "tool-without-id",
        {"model": "skillswitch", "messages": [{"role": "tool", "content": "4"}, *user("hi")]},
        400,
        "messages[0]",
        "tool message without tool_call_id",
    ),
    case(
        "tool-result-of-no-call",
        {
            "model": "skillswitch",
            "messages": [*user("hi"), {"role": "tool", "tool_call_id": "call_9", "content": "4"}],
        },
        400,
        "messages[1]",
        "answers tool call 'call_9', which the assistant message before it did not make",
    ),
    case(
        "unanswered-tool-call",
        {
            "model": "skillswitch",
            "messages": [
                *user("weather?"),
                {"role": "assistant", "content": None, "tool_calls": [CALL]},
                *user("and now?"),
            ],
        },
        400,
        "messages[1]",
        "calls tools whose results are missing (call_1)",
    ),
    case(
        "function-role",
        {"model": "skillswitch", "messages": [{"role": "function", "content": "4"}]},
        400,
        "messages[0].role",
        "deprecated form of tool results; send role 'tool'",
    ),
    case(
        "empty-messages",
        {"model": "skillswitch", "messages": []},
        400,
        "messages",
        "messages is empty",
    ),
    case(
        "last-not-user",
        {"model": "skillswitch", "messages": [{"role": "assistant", "content": "hi"}]},
        400,
        "messages",
        "the last message must be a non-empty user message",
    ),
    case(
        "blank-user",
        {"model": "skillswitch", "messages": user("   ")},
        400,
        "messages",
        "non-empty user message",
    ),
    case(
        "image-part",
        {
            "model": "skillswitch",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        },
        400,
        "messages[0].content",
        "'image_url' part; skillswitch routes text only",
    ),
    case(
        "null-content",
        {"model": "skillswitch", "messages": [{"role": "user", "content": None}]},
        400,
        "messages[0].content",
        "content is null",
    ),
    case(
        "tool-not-a-function",
        {"model": "skillswitch", "messages": user("hi"), "tools": [{"type": "retrieval"}]},
        400,
        "tools",
        "tools[0].type is 'retrieval'; only 'function' tools",
    ),
    case(
        "tool-bad-name",
        {
            "model": "skillswitch",
            "messages": user("hi"),
            "tools": [{"type": "function", "function": {"name": "get weather"}}],
        },
        400,
        "tools",
        "tools[0].function.name is 'get weather'",
    ),
    case(
        "tool-twice",
        {"model": "skillswitch", "messages": user("hi"), "tools": [WEATHER, WEATHER]},
        400,
        "tools",
        "get_weather more than once",
    ),
    case(
        "tool-choice-without-tools",
        {"model": "skillswitch", "messages": user("hi"), "tool_choice": "required"},
        400,
        "tool_choice",
        "tool_choice is 'required' but no tools are given",
    ),
    case(
        "tool-choice-unknown-function",
        {
            "model": "skillswitch",
            "messages": user("hi"),
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
        400,
        "tool_choice",
        "names the function 'get_time', which is not among the tools (get_weather)",
    ),
    case(
        "tool-choice-required-no-capable-expert",
        {
            "model": "clock",
            "messages": user("hi"),
            "tools": [WEATHER],
            "tool_choice": "required",
        },
        400,
        None,
        "cannot call the caller's tools",
    ),
    case(
        "legacy-functions",
        {"model": "skillswitch", "messages": user("hi"), "functions": [{"name": "f"}]},
        400,
        "functions",
        "deprecated form of tools",
    ),
    case("n", {"model": "skillswitch", "messages": user("hi"), "n": 2}, 400, "n", "n is 2"),
    case(
        "temperature-out-of-range",
        {"model": "polyglot", "messages": user("hi"), "temperature": 2.5},
        400,
        "temperature",
        "less than or equal to 2",
    ),
    case(
        "max-tokens-zero",
        {"model": "polyglot", "messages": user("hi"), "max_completion_tokens": 0},
        400,
        "max_completion_tokens",
        "greater than or equal to 1",
    ),
    case(
        "temperature-as-text",
        {"model": "polyglot", "messages": user("hi"), "temperature": "0.3"},
        400,
        "temperature",
        'input should be a valid number, got "0.3"',
    ),
    case(
        "stop-not-text",
        {"model": "polyglot", "messages": user("hi"), "stop": [1]},
        400,
        "stop",
        "a string or a list of up to 4 strings is needed, got [1]",
    ),
    case(
        "stream-as-text",
        {"model": "polyglot", "messages": user("hi"), "stream": "yes"},
        400,
        "stream",
        'input should be a valid boolean, got "yes"',
    ),
    case(
        "five-stops",
        {"model": "polyglot", "messages": user("hi"), "stop": list("abcde")},
        400,
        "stop",
        "stop has 5 strings; give at most 4",
    ),
    case(
        "empty-stop",
        {"model": "polyglot", "messages": user("hi"), "stop": ["a", ""]},
        400,
        "stop",
        "stop[1] is ''; give a non-empty string",
    ),
    case(
        "stream-not-bool",
        {"model": "skillswitch", "messages": user("hi"), "stream": [True]},
        400,
        "stream",
        "[true]",
    ),
]


@pytest.mark.parametrize(("body", "status", "param", "needles"), ERROR_CASES)
def test_client_mistakes_get_openai_shaped_4xx(
    url: str, body: Any, status: int, param: str | None, needles: Sequence[str]
) -> None:
    error = assert_error(post(url, body), status, *needles)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"


def test_unknown_routes_and_methods_are_openai_shaped(url: str) -> None:
    assert_error(httpx.get(f"{url}/v1/nothing", headers=AUTH), 404, "no such endpoint")
    assert_error(httpx.get(f"{url}{CHAT}", headers=AUTH), 405, "does not accept GET")


def test_an_api_key_is_required(url: str) -> None:
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError, match="not valid"),
    ):
        wrong.chat.completions.create(model="skillswitch", messages=user("hi"))
    error = assert_error(httpx.get(f"{url}/v1/models"), 401, "Authorization: Bearer")
    assert error["code"] == "invalid_api_key"
    assert KEY not in json.dumps(error)
    assert_error(httpx.get(f"{url}/metrics"), 401, "no API key was sent")
    health = httpx.get(f"{url}/healthz")  # probes need no key
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["experts"]["polyglot"] == "closed"


def test_bodies_over_the_limit_get_413(url: str) -> None:
    big = {"model": "skillswitch", "messages": user("x" * MAX_BODY)}
    error = assert_error(post(url, big), 413, f"at most {MAX_BODY} bytes")
    assert error["code"] == "request_too_large"


def test_a_failing_expert_is_a_502_naming_it_and_its_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="broken", messages=user("hi"))
    assert raised.value.status_code == 502
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["code"] == "upstream_error"
    assert "no expert answered: expert 'broken': HTTP 503" in body["message"]
    assert "injected failure" in body["message"]
    trace = body["skillswitch"]  # what was tried: the route, the error, every attempt
    assert experts_of(trace) == ["broken"]
    (result,) = trace["results"]
    assert (result["ok"], [a["status"] for a in result["attempts"]]) == (False, [503, 503])
    assert trace["aggregation"] is None
    with pytest.raises(openai.InternalServerError, match="expert 'broken': HTTP 503") as streamed:
        client.chat.completions.create(model="broken", messages=user("hi"), stream=True)
    assert streamed.value.status_code == 502  # refused before the stream started


def test_an_expert_out_of_time_is_a_504(url: str) -> None:
    error = assert_error(
        post(url, {"model": "sloth", "messages": user("hi")}),
        504,
        "no expert answered in time: expert 'sloth': no answer within 0.2 s",
    )
    assert error["code"] == "upstream_timeout"
    assert error["type"] == "server_error"


def test_a_stream_that_dies_midway_ends_with_an_error_event(client: openai.OpenAI) -> None:
    received: list[str] = []

    def read() -> None:
        with client.chat.completions.create(
            model="dropper", messages=user("one two three four"), stream=True
        ) as stream:
            received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

    with pytest.raises(openai.APIError, match="expert 'dropper'"):
        read()
    assert "".join(received) == "echo: one"  # what came before the upstream died


def test_unknown_fields_are_accepted_and_logged(url: str, caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "model": "polyglot",
        "messages": [{"role": "user", "content": "hi", "name": "ann"}],
        "logit_bias": {"50256": -100},
        "x\nY": 1,  # names are the client's text: neither may break the header or the log
        "名前": 2,
    }
    with caplog.at_level(logging.INFO, logger="skillswitch.server.api"):
        response = post(url, body)
    assert response.status_code == 200, response.text
    ignored = "logit_bias, x?Y, ??, messages[0].name"
    assert response.headers["x-skillswitch-ignored-fields"] == ignored
    assert any(ignored in record.getMessage() for record in caplog.records)
    assert all(KEY not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("stream", [False, True])
def test_sampling_fields_reach_the_expert(
    client: openai.OpenAI, chat_requests: list[dict[str, Any]], stream: bool
) -> None:
    before = len(chat_requests)
    response = client.chat.completions.with_raw_response.create(
        model="polyglot",
        messages=user("hi"),
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=7,
        seed=3,
        stop="\n\n",
        stream=stream,
    )
    assert "x-skillswitch-ignored-fields" not in response.headers
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    else:
        assert response.parse().choices[0].message.content == "echo: hi"
    (sent,) = chat_requests[before:]
    assert {k: sent.get(k) for k in ("temperature", "top_p", "max_tokens", "seed", "stop")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 7,
        "seed": 3,
        "stop": ["\n\n"],
    }


class Gate:
    """An expert that answers only when released, and tells when it is called and whether
    its call was cancelled."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.cancelled = threading.Event()

    async def __call__(self, messages: Sequence[Message]) -> str:
        self.entered.set()
        try:
            await anyio.to_thread.run_sync(self.release.wait, 30, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return "done"


@contextmanager
def gated_server(upstream: str, cache_root: Path, **limits: Any) -> Iterator[tuple[str, Gate]]:
    """A server whose ``calculator`` is a ``Gate``."""
    gate = Gate()
    gated = Switch.from_config(
        parse_config(config_text(upstream)),
        overrides={"calculator": FunctionExpert("calculator", gate)},
        cache_dir=cache_root,
    )
    try:
        with serve_app(create_app(gated, **limits)) as base:
            yield base, gate
    finally:
        gate.release.set()


def test_requests_beyond_max_concurrency_get_429(upstream: str, cache_root: Path) -> None:
    answers: list[str | None] = []
    with gated_server(upstream, cache_root, max_concurrency=1) as (base, gate):

        def ask() -> None:
            with openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0) as held_client:
                answer = held_client.chat.completions.create(
                    model="calculator", messages=user("what is 2 plus 2")
                )
            answers.append(answer.choices[0].message.content)

        first = threading.Thread(target=ask)
        first.start()
        try:
            assert gate.entered.wait(30)  # the first request is in flight
            refused = httpx.get(f"{base}/v1/models")
            assert_error(refused, 429, "max_concurrency 1")
            assert refused.headers["retry-after"] == "1"
        finally:
            gate.release.set()
            first.join(30)
        assert answers == ["done"]
        assert httpx.get(f"{base}/v1/models").status_code == 200


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_client_that_leaves_cancels_its_expert(
    upstream: str, cache_root: Path, stream: bool
) -> None:
    with gated_server(upstream, cache_root) as (base, gate):
        body = json.dumps(
            {"model": "calculator", "messages": user("what is 2 plus 2"), "stream": stream}
        ).encode()
        port = int(base.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert gate.entered.wait(30)  # the expert is answering; the client hangs up
        assert gate.cancelled.wait(30)
        assert not gate.release.is_set()


def test_create_app_checks_its_limits(switch: Switch) -> None:
    with pytest.raises(ValueError, match="max_concurrency is 0"):
        create_app(switch, max_concurrency=0)
    with pytest.raises(ValueError, match="api_key is empty"):
        create_app(switch, api_key=" ")


# --- the command line ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_cli_serves_until_terminated(
    upstream: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(upstream), encoding="utf-8")
    port = free_port()
    env = {**cli_env, "SKILLSWITCH_TEST_KEY": KEY}
    command = Path(sys.executable).parent / "skillswitch"
    process = subprocess.Popen(
        [
            str(command),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--api-key-env",
            "SKILLSWITCH_TEST_KEY",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, process.communicate()[1]
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60)
        with openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0) as cli_client:
            answer = cli_client.chat.completions.create(
                model="skillswitch", messages=user(TRANSLATE)
            )
        assert answer.choices[0].message.content == f"echo: {TRANSLATE}"
        assert experts_of(trace_of(answer)) == ["polyglot"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"on http://127.0.0.1:{port}/v1 (API key required)" in stderr
    assert KEY not in stderr


def test_cli_refuses_a_public_host_without_an_api_key(cli_env: dict[str, str]) -> None:
    completed = run(["serve", "--host", "0.0.0.0"], cli_env)
    assert completed.returncode == 2
    assert "'0.0.0.0' is not a loopback address" in completed.stderr
    assert "--api-key-env" in completed.stderr
    unset = {k: v for k, v in cli_env.items() if k != "NO_SUCH_KEY_VARIABLE"}
    completed = run(["serve", "--api-key-env", "NO_SUCH_KEY_VARIABLE"], unset)
    assert completed.returncode == 2
    assert "'NO_SUCH_KEY_VARIABLE' is not set" in completed.stderr
    assert os.environ.get("NO_SUCH_KEY_VARIABLE") is None
