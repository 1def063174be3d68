"""Chat messages and expert replies: parsed once at the edge, typed everywhere after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.exceptions import RequestError

__all__ = [
    "Message",
    "Prices",
    "Role",
    "TextDelta",
    "Usage",
    "last_user_text",
    "parse_messages",
    "typed_messages",
]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``tool_calls``: an assistant's calls of the caller's tools;
    ``tool_call_id``: which call a ``tool`` message answers."""

    role: Role
    content: str
    tool_calls: tuple[ClientToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
            message["content"] = self.content or None
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call; ``cost`` in the prices' currency (0 when no prices are set)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
        )


@dataclass(frozen=True, slots=True)
class Prices:
    """Price per million prompt and completion tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def usage(self, prompt_tokens: int, completion_tokens: int) -> Usage:
        cost = (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000
        return Usage(prompt_tokens, completion_tokens, cost)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text."""

    text: str


def parse_messages(
    request: str | bytes | Sequence[Mapping[str, Any] | Message],
) -> tuple[Message, ...]:
    """A text (or UTF-8 bytes) becomes one user message; OpenAI-shaped dicts are checked and
    typed. Anything else is a ``RequestError`` naming what was sent.

    The conversation ends with a non-empty user message, or with the ``tool`` messages that
    answer the calls of the assistant message before them (the caller ran its tools).

    >>> parse_messages("hi")
    (Message(role='user', content='hi', tool_calls=(), tool_call_id=None),)
    """
    if isinstance(request, bytes | bytearray | memoryview):
        request = _decoded(request)
    if isinstance(request, str):
        if not request.strip():
            raise RequestError("request is empty or only whitespace; send some text")
        return (Message("user", request),)
    if isinstance(request, Mapping):
        raise RequestError(
            "request is one message (a dict), not a list of messages; send a text or a "
            'list, e.g. [{"role": "user", "content": "..."}]'
        )
    if not isinstance(request, Sequence):
        raise RequestError(
            f"request must be a text (str) or a list of messages, got {type(request).__name__}"
        )
    messages = typed_messages(request)
    if not messages:
        raise RequestError("messages is empty; send at least one user message")
    last = messages[-1]
    if last.role == "tool":
        if not any(m.role == "user" for m in messages):
            raise RequestError("messages has no user message; send the user's request too")
    elif last.role != "user" or not last.content.strip():
        raise RequestError(
            "the last message must be a non-empty user message (or the tool messages that "
            "answer the assistant's tool calls)"
        )
    return messages


def typed_messages(items: Sequence[Any]) -> tuple[Message, ...]:
    """OpenAI-shaped messages checked and typed, tool calls and their results paired; unlike
    ``parse_messages``, any message may come last (a model server continues any conversation).
    """
    messages = tuple(
        item if isinstance(item, Message) else _message(index, item)
        for index, item in enumerate(items)
    )
    _check_tool_answers(messages)
    return messages


def _decoded(raw: bytes | bytearray | memoryview) -> str:
    data = bytes(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"request is not valid UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "send UTF-8 text"
        ) from None


def last_user_text(messages: Sequence[Message]) -> str:
    """The text of the last user message: what a request is routed on."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _message(index: int, item: object) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, Mapping):
        raise RequestError(f"{where} must be an object with role and content")
    role = item.get("role")
    content = item.get("content")
    if role not in _ROLES:
        raise RequestError(f"{where}.role is {role!r}; use one of {', '.join(_ROLES)}")
    calls = _tool_calls(where, item.get("tool_calls")) if role == "assistant" else ()
    if content is None and calls:
        content = ""  # an assistant turn that only calls tools
    if content is None:
        raise RequestError(
            f"{where}.content is null; give the message's text (null is only for an "
            "assistant message that calls tools)"
        )
    if isinstance(content, Sequence) and not isinstance(content, str):
        content = _text_parts(where, content)
    if not isinstance(content, str):
        raise RequestError(
            f"{where}.content must be text or a list of text parts, got {type(content).__name__}"
        )
    call_id = item.get("tool_call_id")
    if role == "tool":
        if not isinstance(call_id, str) or not call_id:
            raise RequestError(
                f"{where} is a tool message without tool_call_id; give the id of the call "
                "it answers"
            )
        return Message("tool", content, tool_call_id=call_id)
    return Message(role, content, tool_calls=calls)


def _text_parts(where: str, parts: Sequence[object]) -> str:
    """OpenAI's content parts, text only (``{"type": "text", "text": ...}``), joined by lines."""
    texts = []
    for position, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        text = part.get("text") if isinstance(part, Mapping) else None
        if kind != "text" or not isinstance(text, str):
            detail = (
                f"a {kind!r} part; skillswitch routes text only"
                if isinstance(kind, str) and kind != "text"
                else f"{part!r}"
            )
            raise RequestError(
                f'{where}.content[{position}] is {detail}; give {{"type": "text", "text": ...}}'
            )
        texts.append(text)
    return "\n".join(texts)


def _tool_calls(where: str, value: object) -> tuple[ClientToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RequestError(f"{where}.tool_calls must be a list of tool calls")
    calls: list[ClientToolCall] = []
    for index, call in enumerate(value):
        place = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(call, Mapping) or not isinstance(function, Mapping):
            raise RequestError(f"{place} must be an object with id and function")
        call_id, name = call.get("id"), function.get("name")
        arguments = function.get("arguments", "{}")
        if not isinstance(call_id, str) or not call_id:
            raise RequestError(f"{place}.id must be a non-empty string")
        if not isinstance(name, str) or not name:
            raise RequestError(f"{place}.function.name must be a non-empty string")
        if not isinstance(arguments, str):
            raise RequestError(f"{place}.function.arguments must be JSON text (a string)")
        calls.append(ClientToolCall(call_id, name, arguments))
    return tuple(calls)


def _check_tool_answers(messages: Sequence[Message]) -> None:
    """OpenAI's rule: the tool messages right after an assistant message that calls tools
    answer each of its calls, once; no other tool message exists."""
    pending: dict[str, None] = {}
    asked_at = -1
    for index, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in pending:
                raise RequestError(
                    f"messages[{index}] answers tool call {message.tool_call_id!r}, which the "
                    "assistant message before it did not make (or which is already answered)"
                )
            del pending[message.tool_call_id]
            continue
        if pending:
            raise RequestError(_unanswered(asked_at, pending))
        pending = dict.fromkeys(call.id for call in message.tool_calls)
        asked_at = index
    if pending and asked_at != len(messages) - 1:
        raise RequestError(_unanswered(asked_at, pending))


def _unanswered(index: int, pending: Mapping[str, None]) -> str:
    return (
        f"messages[{index}] calls tools whose results are missing ({', '.join(pending)}); "
        "follow it with one tool message per call"
    )
