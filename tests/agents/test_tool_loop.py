"""The tool loop's reply: every step's text in order, the same whether answered whole or
streamed as the model writes it (scripted steps; the loop runs the real calculator tool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from skillswitch.agents import parse_messages
from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import TextDelta, Usage
from skillswitch.agents.tool_loop import STEP_SEPARATOR, ModelTurn, ToolLoop
from skillswitch.exceptions import ExpertResponseError
from skillswitch.tools.builtin import BUILTIN_TOOLS

pytestmark = pytest.mark.anyio

MULTIPLY = ClientToolCall("call-1", "calculator", '{"expression": "17 * 23"}')


def turn(text: str | None, *calls: ClientToolCall) -> ModelTurn:
    return ModelTurn(text, calls, Usage(1, 1), "scripted", "tool_calls" if calls else "stop")


class Script:
    """Answers each step with the next turn, in pieces of ``size`` characters when streamed;
    records the conversations it was shown."""

    def __init__(self, *turns: ModelTurn, size: int = 3) -> None:
        self.turns = list(turns)
        self.size = size
        self.seen: list[list[dict[str, Any]]] = []

    async def step(self, conversation: list[dict[str, Any]], *_: Any) -> ModelTurn:
        self.seen.append(list(conversation))
        return self.turns.pop(0)

    async def streamed(
        self, conversation: list[dict[str, Any]], *_: Any
    ) -> AsyncIterator[str | ModelTurn]:
        answer = await self.step(conversation)
        text = answer.text or ""
        for at in range(0, len(text), self.size):
            yield text[at : at + self.size]
        yield answer


def loop() -> ToolLoop:
    return ToolLoop("solver", [BUILTIN_TOOLS["calculator"]()], max_steps=3)


TURNS = (turn("Let me work it out.", MULTIPLY), turn(None, MULTIPLY), turn("It is 391."))


async def test_the_reply_is_every_step_s_text_in_order() -> None:
    script = Script(*TURNS)
    reply = await loop().run(parse_messages("17 * 23"), script.step)
    assert reply.text == "Let me work it out." + STEP_SEPARATOR + "It is 391."
    assert [call.result for call in reply.tool_calls] == ["391", "391"]
    assert script.seen[1][-2]["content"] == "Let me work it out."  # the model sees its text
    assert reply.usage.prompt_tokens == 3


@pytest.mark.parametrize("size", [1, 4, 100])
async def test_a_stream_sends_the_reply_s_text_as_the_steps_write_it(size: int) -> None:
    whole = await loop().run(parse_messages("17 * 23"), Script(*TURNS).step)
    script = Script(*TURNS, size=size)
    parts = [part async for part in loop().stream(parse_messages("17 * 23"), script.streamed)]
    *deltas, reply = parts
    assert isinstance(reply, ExpertReply)
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert "".join(delta.text for delta in deltas) == reply.text == whole.text  # type: ignore[union-attr]
    assert len(deltas) >= 3  # each step's text as it comes, the separator between them
    assert [(c.tool, c.result) for c in reply.tool_calls] == [
        (c.tool, c.result) for c in whole.tool_calls
    ]


async def test_an_empty_last_answer_is_an_error_after_text_was_streamed() -> None:
    script = Script(turn("Checking.", MULTIPLY), turn(""))
    parts: list[Any] = []

    async def read() -> None:
        async for part in loop().stream(parse_messages("17 * 23"), script.streamed):
            parts.append(part)

    with pytest.raises(ExpertResponseError, match="empty after 1 tool call"):
        await read()
    assert "".join(part.text for part in parts) == "Checking."


async def test_with_a_response_format_the_reply_is_the_last_step_s_object_alone() -> None:
    from skillswitch.agents.sampling import parse_sampling, request_sampling

    json_mode = parse_sampling({"response_format": {"type": "json_object"}})
    turns = (turn("Let me work it out.", MULTIPLY), turn('{"product": 391}'))
    with request_sampling(json_mode):
        whole = await loop().run(parse_messages("17 * 23"), Script(*turns).step)
        script = Script(*turns)
        parts = [part async for part in loop().stream(parse_messages("17 * 23"), script.streamed)]
    assert whole.text == '{"product": 391}'
    *deltas, reply = parts
    assert [delta.text for delta in deltas] == ['{"product": 391}']  # type: ignore[union-attr]
    assert reply.text == whole.text  # type: ignore[union-attr]


async def test_with_a_response_format_a_call_for_the_caller_carries_its_own_step_s_text() -> None:
    from skillswitch.agents.client_tools import client_tools, parse_client_tools
    from skillswitch.agents.sampling import parse_sampling, request_sampling

    offered = parse_client_tools(
        [{"type": "function", "function": {"name": "ask_user", "parameters": {}}}], "auto"
    )
    asking = ClientToolCall("call-2", "ask_user", "{}")
    turns = (turn("Let me work it out.", MULTIPLY), turn(None, asking))
    json_mode = parse_sampling({"response_format": {"type": "json_object"}})
    with request_sampling(json_mode), client_tools(offered):
        script = Script(*turns)
        parts = [part async for part in loop().stream(parse_messages("17 * 23"), script.streamed)]
    (reply,) = parts  # no text: the interim step's is not the reply's
    assert isinstance(reply, ExpertReply)
    assert reply.text == ""
    assert [call.name for call in reply.client_tool_calls] == ["ask_user"]
