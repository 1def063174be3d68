"""The request and response bodies of ``POST /v1/chat/completions`` (OpenAI's shapes, plus
the ``skillswitch`` extension field that carries the trace)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

from skillswitch.agents.messages import Usage as TraceUsage
from skillswitch.agents.sampling import MAX_TOKENS, SEED_RANGE
from skillswitch.server.api.common import ChatMessage
from skillswitch.server.chat_chunks import ChunkChoice, Delta

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "Delta",
    "ResponseMessage",
    "StreamOptions",
    "Usage",
]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. The sampling fields (``temperature``, ``top_p``,
    ``max_tokens`` or ``max_completion_tokens``, ``seed``, ``stop``) apply to every model that
    answers the request, the experts and the aggregator, over each expert's configured ones;
    ``response_format`` is asked of each of them too, and the answer is checked to be in it.
    Fields not declared here are accepted, and named as ignored in a response header."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage]
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    n: int | None = None
    # strict: a number sent as text ("0.2") is the client's mistake, as on OpenAI's API
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, gt=0, le=1, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS, strict=True)
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1], strict=True)
    stop: str | list[str] | None = None
    # JSON mode or structured output, OpenAI's shapes; read by parse_response_format, whose
    # 400s name the field inside it ("response_format.json_schema.name is ...")
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None

    @field_validator("stop", mode="before")
    @classmethod
    def _text_or_texts(cls, value: Any) -> Any:
        """One message for a wrong kind, not one per member of the union."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(text, str) for text in value):
            return value
        raise ValueError(
            f"a string or a list of up to 4 strings is needed, got {value!r}: send "
            '"stop": "\\n\\n" or "stop": ["END", "\\n\\n"]'
        )

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self) -> dict[str, Any]:
        """The sampling fields the client sent, by OpenAI's names."""
        names = (
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "seed",
            "stop",
            "response_format",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def ignored_fields(self) -> list[str]:
        names = sorted(self.model_extra or {})
        for index, message in enumerate(self.messages):
            names += message.ignored_fields(f"messages[{index}]")
        return names


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: TraceUsage) -> Usage:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    """Calls of the client's tools (OpenAI's shape); content is then null unless the expert
    also wrote text."""

    @model_serializer
    def _fields(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


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
    skillswitch: dict[str, Any]
    """The trace (schema ``skillswitch.trace/1``): skills, experts, tool calls, cost, timings."""


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    skillswitch: dict[str, Any] | None = None
    """The trace, on the last chunk before ``[DONE]`` only."""
