"""LangChain messages in, skillswitch messages out; a skillswitch ``Answer`` back as an
``AIMessage`` (or the last ``AIMessageChunk`` of a stream) with its trace and usage.

Text only for now: system, human and AI messages whose content is text or a list of text
blocks. Anything else (tool messages, tool calls, images, files) is refused with a
``ValueError`` naming it, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.ai import UsageMetadata

from skillswitch.agents.messages import Message, Role
from skillswitch.trace import Answer

__all__ = [
    "PROVIDER",
    "answer_chunk",
    "answer_message",
    "response_metadata",
    "to_skillswitch_messages",
    "usage_metadata",
]

PROVIDER = "skillswitch"
SUPPORTED = (
    "SystemMessage, HumanMessage and AIMessage (or ChatMessage with role system, user or "
    "assistant) with text content: a string or a list of text blocks"
)
_CHAT_ROLES: Mapping[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}


def to_skillswitch_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """The conversation as skillswitch ``Message``s.

    >>> from langchain_core.messages import HumanMessage, SystemMessage
    >>> messages = to_skillswitch_messages([SystemMessage("be brief"), HumanMessage("hi")])
    >>> [(m.role, m.content) for m in messages]
    [('system', 'be brief'), ('user', 'hi')]
    """
    return [_message(index, message) for index, message in enumerate(messages)]


def _message(index: int, message: BaseMessage) -> Message:
    where = f"messages[{index}]"
    kind = type(message).__name__
    if isinstance(message, AIMessage):
        calls = [call["name"] for call in message.tool_calls] + [
            str(call.get("name")) for call in message.invalid_tool_calls
        ]
        if calls:
            raise ValueError(
                f"{where} is an {kind} with tool calls ({', '.join(calls)}); "
                f"SkillSwitchChatModel does not take tool calls yet. It accepts {SUPPORTED}."
            )
        return Message("assistant", _text(where, kind, message.content))
    if isinstance(message, HumanMessage):
        return Message("user", _text(where, kind, message.content))
    if isinstance(message, SystemMessage):
        return Message("system", _text(where, kind, message.content))
    if isinstance(message, ChatMessage):
        role = _CHAT_ROLES.get(message.role)
        if role is None:
            raise ValueError(
                f"{where} is a ChatMessage with role {message.role!r}; use one of "
                f"{', '.join(_CHAT_ROLES)}. SkillSwitchChatModel accepts {SUPPORTED}."
            )
        return Message(role, _text(where, kind, message.content))
    raise ValueError(
        f"{where} is a {kind}, which SkillSwitchChatModel does not take "
        f"(tool messages and tool calls are not supported yet); it accepts {SUPPORTED}."
    )


def _text(where: str, kind: str, content: str | list[str | dict[Any, Any]]) -> str:
    """A message's text: its string, or its text blocks joined as LangChain's ``.text`` does."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for position, block in enumerate(content):
        if isinstance(block, str):
            parts.append(block)
            continue
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str):
            parts.append(text)
            continue
        raise ValueError(
            f"{where} ({kind}) has a {block.get('type')!r} block at content[{position}]; "
            "skillswitch's experts take text only: send text blocks "
            "({'type': 'text', 'text': ...}) or a string"
        )
    return "".join(parts)


def usage_metadata(answer: Answer) -> UsageMetadata:
    """Tokens of every call the answer took (experts, aggregator, keyword extraction)."""
    usage = answer.trace.usage
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def response_metadata(answer: Answer, model_name: str) -> dict[str, Any]:
    """``finish_reason``, the ``model_name`` the call was made with (as on the HTTP API:
    ``skillswitch``, ``skillswitch/<skill>`` or an expert's name), and the whole trace under
    ``skillswitch`` (``Trace.to_dict()``: skills and scores, experts, results, tool calls,
    aggregation, usage with cost, timings)."""
    return {
        "finish_reason": answer.finish_reason,
        "model_name": model_name,
        "model_provider": PROVIDER,
        PROVIDER: answer.trace.to_dict(),
    }


def answer_message(answer: Answer, model_name: str) -> AIMessage:
    return AIMessage(
        content=answer.text,
        response_metadata=response_metadata(answer, model_name),
        usage_metadata=usage_metadata(answer),
    )


def answer_chunk(answer: Answer, model_name: str) -> AIMessageChunk:
    """The last chunk of a stream: no text (the deltas carried it), the metadata."""
    return AIMessageChunk(
        content="",
        response_metadata=response_metadata(answer, model_name),
        usage_metadata=usage_metadata(answer),
        chunk_position="last",
    )
