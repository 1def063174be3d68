"""LangChain messages in, skillswitch messages out; a skillswitch ``Answer`` back as an
``AIMessage`` (or the last ``AIMessageChunk`` of a stream) with its trace and usage.

Text, and the caller's tools: system, human and AI messages whose content is text or a list
of text blocks, AI messages' tool calls and the tool messages that answer them. Anything else
(images, files, invalid tool calls) is refused with a ``ValueError`` naming it, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata

from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message, Role, parse_messages
from skillswitch.exceptions import RequestError
from skillswitch.trace import Answer

__all__ = [
    "PROVIDER",
    "answer_chunk",
    "answer_message",
    "conversation",
    "response_metadata",
    "to_skillswitch_messages",
    "usage_metadata",
]

PROVIDER = "skillswitch"
SUPPORTED = (
    "SystemMessage, HumanMessage and AIMessage (or ChatMessage with role system, user or "
    "assistant) with text content: a string or a list of text blocks; AIMessage's tool calls "
    "and the ToolMessages that answer them"
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


def conversation(messages: Sequence[BaseMessage]) -> list[Message]:
    """``to_skillswitch_messages``, checked as the switch will check it (the last message;
    tool calls and the results that answer them): a ``ValueError`` before anything runs."""
    converted = to_skillswitch_messages(messages)
    try:
        parse_messages(converted)
    except RequestError as exc:
        raise ValueError(str(exc)) from None
    return converted


def _message(index: int, message: BaseMessage) -> Message:
    where = f"messages[{index}]"
    kind = type(message).__name__
    if isinstance(message, AIMessage):
        if message.invalid_tool_calls:
            names = ", ".join(str(call.get("name")) for call in message.invalid_tool_calls)
            raise ValueError(
                f"{where} is an {kind} with invalid tool calls ({names}); drop them or send "
                "their corrected calls"
            )
        calls = tuple(_client_call(where, call) for call in message.tool_calls)
        return Message("assistant", _text(where, kind, message.content), tool_calls=calls)
    if isinstance(message, ToolMessage):
        return Message(
            "tool", _text(where, kind, message.content), tool_call_id=message.tool_call_id
        )
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
        f"{where} is a {kind}, which SkillSwitchChatModel does not take; it accepts {SUPPORTED}."
    )


def _client_call(where: str, call: ToolCall) -> ClientToolCall:
    if not call.get("id"):
        raise ValueError(
            f"{where} has a tool call of {call['name']!r} without an id; give each call the id "
            "its ToolMessage answers"
        )
    return ClientToolCall(str(call["id"]), call["name"], json.dumps(call["args"]))


def tool_calls(answer: Answer) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """The answer's calls of the caller's tools, as LangChain's parsed tool calls (arguments
    that are not a JSON object become invalid tool calls, as in langchain-openai)."""
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in answer.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            problem = f"arguments are not JSON: {exc}"
        else:
            if isinstance(arguments, dict):
                valid.append(ToolCall(name=call.name, args=arguments, id=call.id, type="tool_call"))
                continue
            problem = "arguments are not a JSON object"
        invalid.append(
            InvalidToolCall(
                name=call.name,
                args=call.arguments,
                id=call.id,
                error=problem,
                type="invalid_tool_call",
            )
        )
    return valid, invalid


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
    valid, invalid = tool_calls(answer)
    return AIMessage(
        content=answer.text,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        response_metadata=response_metadata(answer, model_name),
        usage_metadata=usage_metadata(answer),
    )


def answer_chunk(answer: Answer, model_name: str) -> AIMessageChunk:
    """The last chunk of a stream: no text (the deltas carried it), the tool calls whole, the
    metadata."""
    chunks = [
        ToolCallChunk(
            name=call.name, args=call.arguments, id=call.id, index=index, type="tool_call_chunk"
        )
        for index, call in enumerate(answer.tool_calls)
    ]
    return AIMessageChunk(
        content="",
        tool_call_chunks=chunks,
        response_metadata=response_metadata(answer, model_name),
        usage_metadata=usage_metadata(answer),
        chunk_position="last",
    )
