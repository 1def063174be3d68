"""Chat messages and expert replies: parsed once at the edge, typed everywhere after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from skillswitch.exceptions import RequestError

__all__ = ["Message", "Prices", "Role", "TextDelta", "Usage", "parse_messages"]

Role = Literal["system", "user", "assistant"]
_ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str

    def to_openai(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


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


def parse_messages(request: str | Sequence[Mapping[str, Any] | Message]) -> tuple[Message, ...]:
    """A text becomes one user message; OpenAI-shaped dicts are checked and typed.

    >>> parse_messages("hi")
    (Message(role='user', content='hi'),)
    """
    if isinstance(request, str):
        if not request.strip():
            raise RequestError("request is empty or only whitespace; send some text")
        return (Message("user", request),)
    messages: list[Message] = []
    for index, item in enumerate(request):
        if isinstance(item, Message):
            messages.append(item)
            continue
        if not isinstance(item, Mapping):
            raise RequestError(f"messages[{index}] must be an object with role and content")
        role = item.get("role")
        content = item.get("content")
        if role not in _ROLES:
            raise RequestError(
                f"messages[{index}].role is {role!r}; use one of {', '.join(_ROLES)}"
            )
        if not isinstance(content, str):
            raise RequestError(
                f"messages[{index}].content must be text, got {type(content).__name__}"
            )
        messages.append(Message(role, content))
    if not messages:
        raise RequestError("messages is empty; send at least one user message")
    if messages[-1].role != "user" or not messages[-1].content.strip():
        raise RequestError("the last message must be a non-empty user message")
    return tuple(messages)
