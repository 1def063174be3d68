"""A caller's ``response_format`` (JSON mode, structured output): asked of every model that
answers, the answer checked to be in the form, restated by the aggregator when it is not, and a
``ResponseFormatError`` naming who wrote what when nothing can put it in the form. The experts
are the real loopback upstream (it keeps JSON mode) or fakes where a tool or a model that
ignores the form is the point."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import FunctionExpert, Message, TestExpert, requested_sampling
from skillswitch.config import parse_config
from skillswitch.exceptions import RequestError, ResponseFormatError
from skillswitch.switch import Switch
from skillswitch.trace import Answer
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

QUESTION = "what is 17 times 23"
JSON_MODE = {"type": "json_object"}
PRODUCT = {
    "type": "json_schema",
    "json_schema": {
        "name": "product",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"answer": {"type": "number"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    },
}


def make(upstream: str, cache_root: Path, *, aggregator: bool = True, **overrides: Any) -> Switch:
    judge = "aggregator: judge" if aggregator else "aggregator: null"
    experts = f"""
experts:
  - {{name: calculator, base_url: '{upstream}', model: echo, skills: [math]}}
  - {{name: judge, base_url: '{upstream}', model: echo, skills: [smalltalk]}}
dispatch: {{max_experts: 1, {judge}, answer_rule: last_number}}
"""
    return Switch.from_config(
        parse_config(DEFAULT_SKILLS + experts), overrides=overrides, cache_dir=cache_root
    )


def number_restater(messages: Sequence[Message]) -> str:
    """An aggregator that keeps the form: the last number of the answer it restates."""
    fmt = requested_sampling().response_format
    assert fmt is not None
    assert fmt.kind == "json_schema"
    restated = messages[-1].content.split("<response>")[-1]
    return json.dumps({"answer": int(re.findall(r"\d+", restated)[-1])})


async def test_an_expert_that_keeps_the_form_answers_in_it(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    async with make(upstream, cache_root) as switch:
        before = len(chat_requests)
        answer = await switch.run(QUESTION, sampling={"response_format": JSON_MODE})
        sent = chat_requests[before:]
    assert json.loads(answer.text) == {"echo": QUESTION}
    assert answer.trace.aggregation is not None
    assert answer.trace.aggregation.mode == "pass_through"
    assert [body["response_format"] for body in sent] == [JSON_MODE]


async def test_a_text_answer_is_restated_by_the_aggregator(
    upstream: str, cache_root: Path, chat_requests: list[dict[str, Any]]
) -> None:
    calculator = TestExpert("calculator", reply="17 * 23 = 391")  # a tool: text, whatever asked
    async with make(upstream, cache_root, calculator=calculator) as switch:
        before = len(chat_requests)
        answer = await switch.run(QUESTION, sampling={"response_format": JSON_MODE})
        sent = chat_requests[before:]
    aggregation = answer.trace.aggregation
    assert aggregation is not None
    assert aggregation.mode == "formatted"
    assert aggregation.detail == "judge restated the answer of calculator as json_object"
    restated = json.loads(answer.text)["echo"]  # the judge echoes the prompt it was sent
    assert "<response>\n17 * 23 = 391\n</response>" in restated
    assert [body["response_format"] for body in sent] == [JSON_MODE]
    assert "one JSON object" in sent[0]["messages"][0]["content"]
    assert answer.trace.usage.completion_tokens > 0  # the restating call is counted


async def test_a_schema_is_kept_or_the_error_says_what_is_wrong(
    upstream: str, cache_root: Path
) -> None:
    calculator = TestExpert("calculator", reply="17 * 23 = 391")
    restater = FunctionExpert("judge", number_restater)
    async with make(upstream, cache_root, calculator=calculator, judge=restater) as switch:
        answer = await switch.run(QUESTION, sampling={"response_format": PRODUCT})
    assert json.loads(answer.text) == {"answer": 391}
    # The judge on the upstream echoes: JSON, but not the schema's.
    async with make(upstream, cache_root, calculator=calculator) as switch:
        with pytest.raises(ResponseFormatError) as failed:
            await switch.run(QUESTION, sampling={"response_format": PRODUCT})
    message = str(failed.value)
    assert message.startswith(
        "the answer from calculator is not in the form response_format asks for "
        "json_schema 'product': it is not JSON (Extra data at column 4): '17 * 23 = 391'; "
        "restated by the aggregator judge, it does not follow the schema: "
    )
    assert "'answer' is a required property" in message
    trace = failed.value.trace
    assert trace is not None
    assert trace.dispatch.replies[0].expert == "calculator"


async def test_without_an_aggregator_the_error_says_how_to_get_one(
    upstream: str, cache_root: Path
) -> None:
    calculator = TestExpert("calculator", reply="391")  # JSON, but a number, not an object
    async with make(upstream, cache_root, aggregator=False, calculator=calculator) as switch:
        with pytest.raises(ResponseFormatError, match=r"set dispatch\.aggregator") as failed:
            await switch.run(QUESTION, sampling={"response_format": JSON_MODE})
        assert "it is a JSON number, not an object: '391'" in str(failed.value)
        # Without a form asked for, the same answer is fine.
        assert (await switch.run(QUESTION)).text == "391"


async def test_an_aggregator_that_fails_is_named_with_its_error(
    upstream: str, cache_root: Path
) -> None:
    def broken(_: Sequence[Message]) -> str:
        raise RuntimeError("out of cheese")

    calculator = TestExpert("calculator", reply="about 391")
    judge = FunctionExpert("judge", broken)
    async with make(upstream, cache_root, calculator=calculator, judge=judge) as switch:
        with pytest.raises(ResponseFormatError, match="the aggregator judge failed to restate"):
            await switch.run(QUESTION, sampling={"response_format": JSON_MODE})


async def test_a_fenced_answer_is_read_without_its_fence(upstream: str, cache_root: Path) -> None:
    calculator = TestExpert("calculator", reply='```json\n{"answer": 391}\n```\n')
    async with make(upstream, cache_root, calculator=calculator) as switch:
        answer = await switch.run(QUESTION, sampling={"response_format": PRODUCT})
    assert answer.text == '{"answer": 391}'
    assert answer.trace.aggregation is not None
    assert answer.trace.aggregation.mode == "pass_through"  # no restating call


async def test_out_of_scope_requests_cannot_be_json(upstream: str, cache_root: Path) -> None:
    async with make(upstream, cache_root) as switch:
        text = "transfer 300 dollars from checking to savings"
        assert switch.route(text).out_of_scope
        with pytest.raises(ResponseFormatError, match="outside every skill") as failed:
            await switch.run(text, sampling={"response_format": JSON_MODE})
        assert failed.value.trace is not None
        with pytest.raises(ResponseFormatError, match="outside every skill"):
            async for _ in switch.stream(text, sampling={"response_format": JSON_MODE}):
                pass


async def test_a_stream_sends_the_answer_once_it_is_checked(
    upstream: str, cache_root: Path
) -> None:
    calculator = TestExpert("calculator", reply="17 * 23 = 391")
    restater = FunctionExpert("judge", number_restater)
    async with make(upstream, cache_root, calculator=calculator, judge=restater) as switch:
        texts: list[str] = []
        final: Answer | None = None
        async for event in switch.stream(QUESTION, sampling={"response_format": PRODUCT}):
            if isinstance(event, Answer):
                final = event
            else:
                texts.append(event.text)
        assert texts == ['{"answer": 391}']
        assert final is not None
        assert final.text == texts[0]
    async with make(upstream, cache_root, calculator=calculator) as switch:
        events = switch.stream(QUESTION, sampling={"response_format": PRODUCT})
        with pytest.raises(ResponseFormatError):
            await anext(events)  # before any text: nothing to take back


@pytest.mark.parametrize(
    ("response_format", "needle"),
    [
        ("json", "response_format is 'json'; give an object such as"),
        ({"type": "xml"}, "response_format.type is 'xml'; give 'text', 'json_object'"),
        ({"type": "json_object", "schema": {}}, "unknown field(s) 'schema'; it takes type alone"),
        ({"type": "json_schema"}, "response_format.json_schema is None; give an object"),
        (
            {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}},
            "json_schema.name is 'a b'; give 1 to 64 letters",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x"}},
            "json_schema.schema is missing; give the JSON Schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}},
            "json_schema.schema is not a valid JSON Schema: 'objekt' is not valid",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}},
            "json_schema.strict is 'yes'; give true or false",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
            'json_schema.schema has type "array"; the answer is a JSON object',
        ),
    ],
)
async def test_a_malformed_format_is_refused_before_any_expert(
    upstream: str,
    cache_root: Path,
    chat_requests: list[dict[str, Any]],
    response_format: Any,
    needle: str,
) -> None:
    async with make(upstream, cache_root) as switch:
        before = len(chat_requests)
        with pytest.raises(RequestError, match=re.escape(needle)):
            await switch.run(QUESTION, sampling={"response_format": response_format})
        assert len(chat_requests) == before


async def test_text_asks_for_nothing(upstream: str, cache_root: Path) -> None:
    async with make(upstream, cache_root) as switch:
        answer = await switch.run(QUESTION, sampling={"response_format": {"type": "text"}})
    assert answer.text == f"echo: {QUESTION}"
