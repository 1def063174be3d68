"""``ResponseFormat``: reading an answer in the form, the words a local model is told, and the
OpenAI shape sent to an endpoint."""

from __future__ import annotations

import re

import pytest

from skillswitch.agents import Message
from skillswitch.agents.response_format import (
    ResponseFormat,
    parse_response_format,
    with_format_instruction,
)
from skillswitch.agents.sampling import SamplingSettings, parse_sampling

OPENAI_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "distance",
        "description": "a converted distance",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "km": {"type": "number", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["km"],
        },
    },
}


def test_the_openai_shape_goes_through_unchanged() -> None:
    asked = parse_response_format(OPENAI_SCHEMA)
    assert asked is not None
    assert asked.label == "json_schema 'distance'"
    assert asked.to_openai() == OPENAI_SCHEMA
    assert parse_sampling({"response_format": OPENAI_SCHEMA}).given() == {
        "response_format": OPENAI_SCHEMA
    }
    assert SamplingSettings(response_format=asked) == SamplingSettings(
        response_format=OPENAI_SCHEMA  # type: ignore[arg-type]  # read like the mapping it is
    )


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ('{"km": 8.05}', '{"km": 8.05}'),
        ('  \n{"km": 8.05}\n', '{"km": 8.05}'),
        ('```json\n{"km": 8.05}\n```', '{"km": 8.05}'),
        ('```\n{\n  "km": 8.05\n}\n```', '{\n  "km": 8.05\n}'),
    ],
)
def test_json_is_read_without_spaces_or_one_fence_around_it(text: str, read: str) -> None:
    assert ResponseFormat("json_object").read(text) == read


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("8.05 km", "it is not JSON (Extra data at column 6): '8.05 km'"),
        ("", "it is not JSON (Expecting value at column 1): ''"),
        ('{"km": 1,\n "x": }', "it is not JSON (Expecting value at line 2 column 7)"),
        ('{"km": NaN}', "it is not JSON (NaN is not a JSON value)"),
        ("[1, 2]", "it is a JSON array, not an object: '[1, 2]'"),
        ('"8 km"', "it is a JSON string, not an object"),
        ("x" * 100, "'" + "x" * 60 + "'..."),
    ],
)
def test_what_is_not_a_json_object_is_said(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        ResponseFormat("json_object").read(text)


def test_a_schema_s_failures_are_named_at_their_paths() -> None:
    asked = parse_response_format(OPENAI_SCHEMA)
    assert asked is not None
    assert asked.read('{"km": 3, "tags": ["a"]}') == '{"km": 3, "tags": ["a"]}'
    with pytest.raises(ValueError, match="does not follow the schema") as caught:
        asked.read('{"km": -1, "tags": ["a", 2]}')
    assert str(caught.value) == (
        "it does not follow the schema: km: -1 is less than the minimum of 0; "
        "tags.1: 2 is not of type 'string'"
    )
    with pytest.raises(ValueError, match=r"\(answer\): 'km' is a required property"):
        asked.read("{}")


def test_a_model_that_cannot_be_asked_is_told_in_its_system_message() -> None:
    asked = parse_response_format(OPENAI_SCHEMA)
    assert asked is not None
    question = Message("user", "5 miles in km?")
    told = with_format_instruction([question], asked)
    assert [m.role for m in told] == ["system", "user"]
    assert told[0].content.startswith("Reply with one JSON object and nothing else")
    assert '"required":["km"]' in told[0].content
    system = Message("system", "You convert units.")
    kept = with_format_instruction([system, question], ResponseFormat("json_object"))
    assert [m.role for m in kept] == ["system", "user"]
    assert kept[0].content.startswith("You convert units.\n\nReply with one JSON object")
    assert with_format_instruction([question], None) == [question]
