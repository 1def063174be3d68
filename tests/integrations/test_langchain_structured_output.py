"""SkillSwitchChatModel's sampling and ``with_structured_output`` over a real Switch: the settings
reach the experts' endpoint (the loopback upstream records every body it receives), and the
answer comes back parsed. The upstream keeps JSON mode: asked for JSON, ``echo`` answers
``{"echo": <last message>}``."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from pydantic import BaseModel, ValidationError

from skillswitch.exceptions import ResponseFormatError
from skillswitch.integrations.langchain import SkillSwitchChatModel
from skillswitch.switch import Switch
from tests.integrations.switches import TRANSLATE


class Echo(BaseModel):
    """What the echo model says."""

    echo: str


class EchoDict(TypedDict):
    echo: str


class City(BaseModel):
    city: str


def sent(chat_requests: list[dict[str, Any]], before: int) -> dict[str, Any]:
    """The one body the upstream received since ``before``."""
    (body,) = chat_requests[before:]
    return body


def test_sampling_set_on_the_model_reaches_the_expert(
    switch: Switch, chat_requests: list[dict[str, Any]]
) -> None:
    tuned = SkillSwitchChatModel(
        switch=switch, temperature=0.2, top_p=0.9, max_tokens=50, seed=7, stop_sequences=["\n\n"]
    )
    before = len(chat_requests)
    assert tuned.invoke(TRANSLATE).content == f"echo: {TRANSLATE}"
    body = sent(chat_requests, before)
    assert (body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        0.2,
        0.9,
        7,
        ["\n\n"],
    )
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 50
    params = tuned._get_ls_params()
    assert (params["ls_temperature"], params["ls_max_tokens"], params["ls_stop"]) == (
        0.2,
        50,
        ["\n\n"],
    )


@pytest.mark.parametrize("way", ["invoke", "bind", "stream"])
def test_a_calls_own_sampling_wins_over_the_models(
    switch: Switch, chat_requests: list[dict[str, Any]], way: str
) -> None:
    tuned = SkillSwitchChatModel(switch=switch, temperature=0.2, seed=7)
    before = len(chat_requests)
    if way == "invoke":
        tuned.invoke(TRANSLATE, temperature=0.0, stop=["###"])
    elif way == "bind":
        tuned.bind(temperature=0.0, stop=["###"]).invoke(TRANSLATE)
    else:
        assert "".join(
            str(c.content) for c in tuned.stream(TRANSLATE, temperature=0.0, stop=["###"])
        )
    body = sent(chat_requests, before)
    assert (body["temperature"], body["seed"], body["stop"]) == (0.0, 7, ["###"])


def test_bad_sampling_and_unknown_options_are_refused_by_name(
    model: SkillSwitchChatModel, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    with pytest.raises(ValidationError, match="temperature is 5"):
        SkillSwitchChatModel(switch=model.switch, temperature=5)
    with pytest.raises(ValueError, match="temperature is -1"):
        model.invoke(TRANSLATE, temperature=-1)
    with pytest.raises(TypeError, match=r"unsupported call option\(s\) frequency_penalty; .*seed="):
        model.invoke(TRANSLATE, frequency_penalty=0.5)
    with pytest.raises(ValueError, match=r"response_format\.type is 'xml'"):
        model.invoke(TRANSLATE, response_format={"type": "xml"})
    assert len(chat_requests) == before  # nothing ran


def test_structured_output_is_asked_for_and_parsed(
    model: SkillSwitchChatModel, chat_requests: list[dict[str, Any]]
) -> None:
    before = len(chat_requests)
    parsed = model.with_structured_output(Echo).invoke(TRANSLATE)
    assert parsed == Echo(echo=TRANSLATE)
    asked = sent(chat_requests, before)["response_format"]
    assert asked["type"] == "json_schema"
    assert asked["json_schema"]["name"] == "Echo"
    assert asked["json_schema"]["schema"] == Echo.model_json_schema()


@pytest.mark.parametrize(
    ("schema", "method", "expected"),
    [
        (EchoDict, "json_schema", {"echo": TRANSLATE}),
        (Echo.model_json_schema(), "json_schema", {"echo": TRANSLATE}),
        (Echo, "json_mode", Echo(echo=TRANSLATE)),
        ({"title": "anything", "type": "object"}, "json_mode", {"echo": TRANSLATE}),
    ],
    ids=["typed-dict", "json-schema", "json-mode-pydantic", "json-mode-dict"],
)
def test_other_schemas_and_json_mode(
    model: SkillSwitchChatModel,
    chat_requests: list[dict[str, Any]],
    schema: Any,
    method: Any,
    expected: Any,
) -> None:
    before = len(chat_requests)
    assert model.with_structured_output(schema, method=method).invoke(TRANSLATE) == expected
    kind = sent(chat_requests, before)["response_format"]["type"]
    assert kind == ("json_object" if method == "json_mode" else "json_schema")


@pytest.mark.anyio
async def test_include_raw_gives_the_message_and_the_parsed_value(
    model: SkillSwitchChatModel,
) -> None:
    out = await model.with_structured_output(Echo, include_raw=True, strict=True).ainvoke(TRANSLATE)
    assert isinstance(out["raw"], AIMessage)
    assert out["parsed"] == Echo(echo=TRANSLATE)
    assert out["parsing_error"] is None
    assert out["raw"].response_metadata["skillswitch"]["experts"][0]["expert"] == "polyglot"


def test_json_mode_output_that_the_schema_cannot_parse_is_a_parsing_error(
    model: SkillSwitchChatModel,
) -> None:
    """JSON mode asks for any object; the schema only parses it: {"echo": ...} is no City."""
    out = model.with_structured_output(City, method="json_mode", include_raw=True).invoke(TRANSLATE)
    assert out["parsed"] is None
    assert "city" in str(out["parsing_error"])


def test_an_answer_not_in_the_schema_fails_the_call_with_the_reason(
    model: SkillSwitchChatModel,
) -> None:
    """Asked for City, the endpoint answers {"echo": ...}: the switch checks every answer
    against the schema and, with no aggregator to restate it, the call fails saying why."""
    with pytest.raises(ResponseFormatError, match=r"does not follow the schema.*'city'"):
        model.with_structured_output(City).invoke(TRANSLATE)


def test_structured_output_arguments_are_checked(model: SkillSwitchChatModel) -> None:
    with pytest.raises(ValueError, match="method='xml'"):
        model.with_structured_output(Echo, method="xml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unsupported argument.*tools"):
        model.with_structured_output(Echo, tools=[])
