"""The request and response bodies of ``POST /v1/chat/completions`` (OpenAI's shapes)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from skillswitch.server.chat_chunks import ChunkChoice
from skillswitch.server.models_api.common import SamplingRequest, Usage

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatMessage",
    "TextPart",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
_ROLES = ("system", "developer", "user", "assistant", "tool")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message; an assistant's may call tools (``tool_calls``, content then null) and a
    ``tool`` message brings a call's result (``tool_call_id``): the serving checks the pairing."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _check_role(cls, value: Any) -> Any:
        if value == "function":
            raise ValueError(
                "role 'function' is OpenAI's deprecated form of tool results; send role 'tool' "
                "with the tool_call_id of the call it answers"
            )
        if value not in _ROLES:
            raise ValueError(f"role {_show(value)} is not one of {', '.join(_ROLES)}")
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _check_content(cls, value: Any) -> Any:
        if isinstance(value, str) or value is None:
            return value  # null is for an assistant's tool calls only: the serving checks
        if not isinstance(value, list):
            raise ValueError(
                f"content is {_show(value)}; give a string or a list of "
                '{"type": "text", "text": ...} parts'
            )
        for position, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise ValueError(
                    f"content[{position}] is a {kind!r} part; these models read text only, "
                    'send {"type": "text", "text": ...} parts'
                    if kind
                    else f'content[{position}] is {_show(part)}; give {{"type": "text", '
                    '"text": ...}'
                )
        return value

    def text(self) -> str | None:
        if self.content is None or isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)

    def to_backend(self) -> dict[str, Any]:
        """The message in OpenAI's shape as the backend takes it (``developer`` is OpenAI's
        newer name for ``system``; text parts joined by lines)."""
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": self.text()}
        if self.tool_calls is not None:
            message["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    # JSON mode or structured output, OpenAI's shapes: the answer is decoded in a grammar
    # (serving.response_grammar), so it is JSON of that form whatever the model.
    response_format: dict[str, Any] | None = None

    def max_new_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def ignored_fields(self) -> list[str]:
        names = super().ignored_fields()
        for index, message in enumerate(self.messages):
            names += [f"messages[{index}].{name}" for name in sorted(message.model_extra or {})]
            if message.name is not None:
                names.append(f"messages[{index}].name")
        return names


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
