"""SkillSwitchChatModel over a real Switch: invoke, ainvoke, stream, astream, batch, pinned
routes, the trace and usage in the message, refused messages, and the sync API from inside a
running event loop. Experts are real OpenAI-compatible endpoints on loopback (conftest.py)."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from skillswitch.config import parse_config
from skillswitch.exceptions import ExpertHTTPError, ExpertsFailedError
from skillswitch.integrations.langchain import SkillSwitchChatModel, to_skillswitch_messages
from skillswitch.switch import Switch
from tests.integrations.switches import MATH, TRANSLATE, config_text

ECHO = f"echo: {TRANSLATE}"


def trace_of(message: BaseMessage) -> dict[str, Any]:
    trace: dict[str, Any] = message.response_metadata["skillswitch"]
    assert trace["schema"] == "skillswitch.trace/1"
    return trace


def experts_of(message: BaseMessage) -> list[str]:
    return [selection["expert"] for selection in trace_of(message)["experts"]]


def test_invoke_answers_through_the_route_the_router_chose(
    model: SkillSwitchChatModel, switch: Switch
) -> None:
    reply = model.invoke(TRANSLATE)
    assert isinstance(reply, AIMessage)
    assert reply.content == ECHO
    trace = trace_of(reply)
    decision = switch.route(TRANSLATE)
    assert trace["routing"]["skills"][0]["skill"] == decision.skill_names[0] == "translation"
    assert experts_of(reply) == ["polyglot"]
    assert trace["results"][0]["output"] == ECHO
    assert trace["aggregation"]["mode"] == "pass_through"
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "skillswitch"
    assert reply.response_metadata["model_provider"] == "skillswitch"


def test_usage_is_every_call_of_the_answer_and_the_cost_is_in_the_trace(
    model: SkillSwitchChatModel,
) -> None:
    reply = model.invoke(MATH)
    assert experts_of(reply) == ["calculator"]
    # The upstream counts words: 5 in the question, 6 in "echo: <question>".
    assert isinstance(reply, AIMessage)
    assert reply.usage_metadata == {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}
    usage = trace_of(reply)["usage"]
    assert usage["prompt_tokens"] == 5
    assert usage["completion_tokens"] == 6
    assert usage["cost"] == pytest.approx(5 * 1 + 6 * 2)


@pytest.mark.anyio
async def test_ainvoke(model: SkillSwitchChatModel) -> None:
    reply = await model.ainvoke(TRANSLATE)
    assert reply.content == ECHO
    assert experts_of(reply) == ["polyglot"]
    assert isinstance(reply, AIMessage)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] > 0


class Tokens(BaseCallbackHandler):
    """Collects what LangChain reports to callbacks while streaming."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **_: Any) -> None:
        self.tokens.append(token)


def test_stream_sends_the_experts_deltas_then_the_metadata(model: SkillSwitchChatModel) -> None:
    tokens = Tokens()
    chunks = list(model.stream(TRANSLATE, config={"callbacks": [tokens]}))
    texts = [chunk.content for chunk in chunks]
    assert "".join(map(str, texts)) == model.invoke(TRANSLATE).content == ECHO
    assert len([text for text in texts if text]) > 1  # token by token from the upstream
    assert tokens.tokens == texts  # LangChain's own callbacks see each chunk
    *deltas, last = chunks
    assert all("skillswitch" not in chunk.response_metadata for chunk in deltas)
    assert last.content == ""
    assert last.chunk_position == "last"
    assert experts_of(last) == ["polyglot"]
    assert last.usage_metadata is not None
    whole = functools.reduce(lambda a, b: a + b, chunks)
    assert isinstance(whole, AIMessageChunk)
    assert whole.content == ECHO
    assert whole.usage_metadata == last.usage_metadata
    assert whole.response_metadata["finish_reason"] == "stop"
    assert trace_of(whole)["routing"] == trace_of(last)["routing"]


@pytest.mark.anyio
async def test_astream(model: SkillSwitchChatModel) -> None:
    chunks = [chunk async for chunk in model.astream(MATH)]
    assert "".join(str(chunk.content) for chunk in chunks) == f"echo: {MATH}"
    assert len([c for c in chunks if c.content]) > 1
    assert experts_of(chunks[-1]) == ["calculator"]
    assert chunks[-1].usage_metadata == {
        "input_tokens": 5,
        "output_tokens": 6,
        "total_tokens": 11,
    }


def test_leaving_a_stream_early_cancels_it_and_the_model_stays_usable(
    model: SkillSwitchChatModel,
) -> None:
    stream = model.stream(TRANSLATE)
    assert next(stream).content == "echo:"
    stream.close()
    assert model.invoke(TRANSLATE).content == ECHO


def test_batch_answers_each_input_on_its_own_route(model: SkillSwitchChatModel) -> None:
    inputs = [TRANSLATE, MATH, "hello there, how are you today?"]
    replies = model.batch(inputs)  # LangChain runs these in threads, concurrently
    assert [reply.content for reply in replies] == [f"echo: {text}" for text in inputs]
    assert [experts_of(reply)[0] for reply in replies[:2]] == ["polyglot", "calculator"]


@pytest.mark.anyio
async def test_abatch(model: SkillSwitchChatModel) -> None:
    replies = await model.abatch([TRANSLATE, MATH])
    assert [reply.content for reply in replies] == [ECHO, f"echo: {MATH}"]


def test_a_pinned_skill_or_expert_bypasses_the_router(switch: Switch) -> None:
    by_skill = SkillSwitchChatModel(switch=switch, skill="math").invoke(TRANSLATE)
    assert experts_of(by_skill) == ["calculator"]
    assert trace_of(by_skill)["routing"]["classifier"] == "forced"
    assert by_skill.response_metadata["model_name"] == "skillswitch/math"
    by_expert = SkillSwitchChatModel(switch=switch, expert="generalist").invoke(MATH)
    assert experts_of(by_expert) == ["generalist"]
    assert trace_of(by_expert)["routing"]["classifier"] == "direct"
    assert by_expert.response_metadata["model_name"] == "generalist"
    streamed = list(SkillSwitchChatModel(switch=switch, expert="polyglot").stream(MATH))
    assert experts_of(streamed[-1]) == ["polyglot"]


def test_a_call_may_pin_its_own_route(model: SkillSwitchChatModel) -> None:
    assert experts_of(model.invoke(TRANSLATE, skill="math")) == ["calculator"]
    assert experts_of(model.bind(expert="generalist").invoke(TRANSLATE)) == ["generalist"]
    pinned = SkillSwitchChatModel(switch=model.switch, skill="math")
    # The call's pin replaces the model's.
    assert experts_of(pinned.invoke(MATH, expert="polyglot")) == ["polyglot"]


def test_bad_pins_and_options_are_refused_by_name(model: SkillSwitchChatModel) -> None:
    with pytest.raises(ValueError, match=r"skill='astrology' is not a skill of this switch; "):
        SkillSwitchChatModel(switch=model.switch, skill="astrology")
    with pytest.raises(ValueError, match=r"expert='oracle' is not an expert.*polyglot"):
        SkillSwitchChatModel(switch=model.switch, expert="oracle")
    with pytest.raises(ValueError, match="both pin the route; give one"):
        SkillSwitchChatModel(switch=model.switch, skill="math", expert="polyglot")
    with pytest.raises(ValueError, match="expert='oracle'"):
        model.invoke(TRANSLATE, expert="oracle")
    with pytest.raises(TypeError, match=r"unsupported call option.*logprobs.*skill=, expert="):
        model.invoke(TRANSLATE, logprobs=True)


def test_a_conversation_of_system_human_and_ai_text_messages(
    model: SkillSwitchChatModel,
) -> None:
    reply = model.invoke(
        [
            SystemMessage("Answer briefly."),
            HumanMessage("hello"),
            AIMessage("hi!"),
            ChatMessage(role="assistant", content="anything else?"),
            HumanMessage([{"type": "text", "text": "translate good morning"}, " into French"]),
        ]
    )
    assert reply.content == ECHO
    assert experts_of(reply) == ["polyglot"]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [HumanMessage("hi"), ToolMessage("5", tool_call_id="call_1")],
            r"messages\[1\] answers tool call 'call_1', which the assistant message before it "
            "did not make",
        ),
        (
            [
                HumanMessage("add 2 and 3"),
                AIMessage(
                    "",
                    invalid_tool_calls=[
                        {"name": "add", "args": "{2,", "id": "call_1", "error": "bad JSON"}
                    ],
                ),
                HumanMessage("well?"),
            ],
            r"messages\[1\] is an AIMessage with invalid tool calls \(add\)",
        ),
        (
            [
                HumanMessage(
                    [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}},
                    ]
                )
            ],
            r"messages\[0\] \(HumanMessage\) has a 'image_url' block at content\[1\]",
        ),
        (
            [ChatMessage(role="critic", content="meh")],
            r"messages\[0\] is a ChatMessage with role 'critic'; use one of system, user",
        ),
    ],
    ids=["tool-result-of-no-call", "invalid-tool-calls", "image", "chat-role"],
)
def test_unsupported_messages_are_refused_with_what_is_supported(
    model: SkillSwitchChatModel, messages: list[BaseMessage], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        model.invoke(messages)
    with pytest.raises(ValueError, match=message):
        list(model.stream(messages))


def test_messages_convert_to_the_switchs_own() -> None:
    converted = to_skillswitch_messages(
        [SystemMessage("s"), HumanMessage(["a", {"type": "text", "text": "b"}]), AIMessage("c")]
    )
    assert [(m.role, m.content) for m in converted] == [
        ("system", "s"),
        ("user", "ab"),
        ("assistant", "c"),
    ]


def test_a_failing_expert_raises_the_switchs_error(model: SkillSwitchChatModel) -> None:
    with pytest.raises(ExpertsFailedError) as raised:
        model.invoke("summarize this", expert="broken")
    (failure,) = raised.value.exceptions
    assert isinstance(failure, ExpertHTTPError)
    assert (failure.expert, failure.status) == ("broken", 503)


def test_out_of_scope_requests_get_the_configured_reply(
    model: SkillSwitchChatModel, upstream: str
) -> None:
    reply = model.invoke("book me a flight to paris")
    assert reply.content == parse_config(config_text(upstream)).out_of_scope.reply
    assert trace_of(reply)["routing"]["out_of_scope"] is True
    assert trace_of(reply)["experts"] == []
    assert reply.response_metadata["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_the_sync_api_works_inside_a_running_event_loop(
    model: SkillSwitchChatModel,
) -> None:
    # As in a notebook: async and sync calls mixed on the one loop of the calling thread.
    assert (await model.ainvoke(TRANSLATE)).content == ECHO
    assert model.invoke(TRANSLATE).content == ECHO
    assert "".join(str(c.content) for c in model.stream(TRANSLATE)) == ECHO
    assert [r.content for r in model.batch([TRANSLATE, MATH])] == [ECHO, f"echo: {MATH}"]
    assert (await model.ainvoke(MATH)).content == f"echo: {MATH}"


def test_async_calls_from_one_event_loop_after_another(model: SkillSwitchChatModel) -> None:
    # The experts' connections stay in the switch's own loop, so a caller's loop may come
    # and go (asyncio.run per call) without "Event loop is closed".
    for _ in range(3):
        assert asyncio.run(model.ainvoke(TRANSLATE)).content == ECHO


def test_without_langchain_core_the_import_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import skillswitch.integrations.langchain\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.startswith("MissingLangChainError ")
    assert "pip install 'skillswitch[langchain]'" in result.stdout
