"""``response_format`` over HTTP, driven by the official ``openai`` client: JSON mode and
structured output (``chat.completions.parse`` with a pydantic model) reach the experts, the
answer is checked and restated when it is not in the form, and what cannot be had is a 422
naming who wrote what; a malformed one is a 400 naming the field.

The calculator is the real loopback upstream (it keeps JSON mode: ``{"echo": ...}``); the
aggregator is a fake that restates the last number of the answer it is given, since restating
needs a language model and none runs here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest

from skillswitch.agents import FunctionExpert, Message, requested_sampling
from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve

QUESTION = "what is 17 times 23?"
EXPERTS = """
experts:
  - {{name: calculator, base_url: '{u}', model: echo, skills: [math]}}
  - {{name: clock, kind: tool, tool: clock, skills: [datetime]}}
  - {{name: judge, base_url: '{u}', model: echo, skills: [smalltalk]}}
dispatch: {{max_experts: 1, aggregator: judge}}
"""


class Product(pydantic.BaseModel):
    answer: int


def restate_number(messages: Sequence[Message]) -> str:
    fmt = requested_sampling().response_format
    assert fmt is not None  # the aggregator is asked for the form too
    numbers = re.findall(r"\d+", messages[-1].content.split("<response>")[-1])
    return json.dumps({"answer": int(numbers[-1])}) if numbers else "no number in it"


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    config = parse_config(DEFAULT_SKILLS + EXPERTS.format(u=upstream))
    judge = FunctionExpert("judge", restate_number)
    switch = Switch.from_config(config, overrides={"judge": judge}, cache_dir=cache_root)
    with serve(create_app(switch), lifespan="on") as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as opened:
        yield opened


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_structured_output_parses_into_the_caller_s_model(
    client: openai.OpenAI, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    raw = client.chat.completions.with_raw_response.parse(
        model="skillswitch", messages=user(QUESTION), response_format=Product
    )
    completion = raw.parse()
    assert completion.choices[0].message.parsed == Product(answer=23)  # the last number
    assert raw.headers["x-skillswitch-route"].endswith(";aggregator=formatted")
    assert "x-skillswitch-ignored-fields" not in raw.headers
    (sent,) = chat_requests[before:]  # the calculator, asked for the schema
    spec = sent["response_format"]["json_schema"]
    assert (spec["name"], spec["strict"]) == ("Product", True)
    assert spec["schema"]["required"] == ["answer"]
    trace = completion.model_extra["skillswitch"] if completion.model_extra else {}
    assert trace["aggregation"]["mode"] == "formatted"


def test_json_mode_answers_in_json_streamed_or_not(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="skillswitch", messages=user(QUESTION), response_format={"type": "json_object"}
    )
    assert json.loads(answer.choices[0].message.content or "") == {"echo": QUESTION}
    stream = client.chat.completions.create(
        model="skillswitch",
        messages=user(QUESTION),
        response_format={"type": "json_object"},
        stream=True,
    )
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta]
    assert [d for d in deltas if d] == [answer.choices[0].message.content]


def test_a_form_that_cannot_be_had_is_a_422_with_the_trace(url: str) -> None:
    city = {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for stream in (False, True):  # a stream fails before it starts: a status, not an event
        body = {
            "model": "skillswitch",
            "messages": user("what time is it in Tokyo?"),
            "response_format": city,
            "stream": stream,
        }
        response = post(url, body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "response_format_not_kept"
        assert error["param"] == "response_format"
        assert error["message"].startswith(
            "the answer from clock is not in the form response_format asks for "
            "json_schema 'city': it is not JSON"
        )
        assert "the aggregator judge, it does not follow the schema" in error["message"]
        assert error["skillswitch"]["aggregation"]["mode"] == "pass_through"


@pytest.mark.parametrize(
    ("response_format", "needle"),
    [
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "json_schema.name is None"),
        ({"type": "yaml"}, "response_format.type is 'yaml'"),
        ("json_object", "response_format"),
    ],
)
def test_a_malformed_format_is_a_400_naming_it(
    url: str, chat_requests: list[dict[str, Any]], response_format: Any, needle: str
) -> None:
    before = len(chat_requests)
    body = {"model": "skillswitch", "messages": user(QUESTION), "response_format": response_format}
    response = post(url, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["param"] == "response_format"
    assert len(chat_requests) == before
