from __future__ import annotations

from collections.abc import Sequence

import pytest

from skillswitch.agents import (
    Expert,
    ExpertReply,
    FunctionExpert,
    Message,
    OpenAIChatExpert,
    Prices,
    TestExpert,
    TextDelta,
    Usage,
    parse_messages,
)
from skillswitch.exceptions import RequestError

pytestmark = pytest.mark.anyio


async def test_test_expert_is_deterministic_and_records_calls() -> None:
    expert = TestExpert("math", prices=Prices(1e6, 1e6))
    reply = await expert.answer(parse_messages("what is 2+2"))
    assert reply.text == "math: what is 2+2"
    assert reply.usage == Usage(3, 4, 7.0)
    assert expert.calls == [(Message("user", "what is 2+2"),)]
    fixed = TestExpert("x", reply="42")
    assert (await fixed.answer(parse_messages("anything"))).text == "42"


async def test_function_expert_sync_async_and_bad_return() -> None:
    def shout(messages: Sequence[Message]) -> str:
        return messages[-1].content.upper()

    async def whisper(messages: Sequence[Message]) -> str:
        return messages[-1].content.lower()

    assert (await FunctionExpert("s", shout).answer(parse_messages("hi"))).text == "HI"
    assert (await FunctionExpert("w", whisper).answer(parse_messages("HI"))).text == "hi"
    broken = FunctionExpert("b", lambda messages: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="return the reply text"):
        await broken.answer(parse_messages("hi"))


async def test_fake_stream_rebuilds_the_reply() -> None:
    events = [e async for e in TestExpert("t", reply="one two three").stream(parse_messages("x"))]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    assert isinstance(events[-1], ExpertReply)


def test_every_expert_satisfies_the_protocol() -> None:
    experts = [
        TestExpert("t"),
        FunctionExpert("f", lambda m: "x"),
        OpenAIChatExpert("o", "http://127.0.0.1:9/v1", "m"),
    ]
    assert all(isinstance(e, Expert) for e in experts)


@pytest.mark.parametrize(
    ("request_value", "fragment"),
    [
        ("   ", "empty"),
        ([], "messages is empty"),
        ([{"role": "wizard", "content": "hi"}], "messages[0].role is 'wizard'"),
        ([{"role": "user", "content": 3}], "messages[0].content must be text"),
        (
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
            "last message",
        ),
        (["hi"], "messages[0] must be an object"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content[0] is a 'image_url' part; skillswitch routes text only",
        ),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0] is {"),
    ],
)
def test_bad_messages_are_named(request_value: object, fragment: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_messages(request_value)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


def test_messages_parse_to_typed_values() -> None:
    parsed = parse_messages(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    )
    assert parsed == (Message("system", "be brief"), Message("user", "hi"))
    # OpenAI's text parts, as its SDK sends them, join by lines
    parts = [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]
    assert parse_messages([{"role": "user", "content": parts}]) == (Message("user", "hi\nthere"),)
