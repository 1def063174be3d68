"""The pieces of a streamed chat answer (``chat.completion.chunk``) that both servers send."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, model_serializer

__all__ = ["ChunkChoice", "Delta"]


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    """Calls of the client's tools, each with its ``index``, whole in one delta."""

    @model_serializer
    def _present_fields(self) -> dict[str, Any]:
        """OpenAI's deltas carry only what changed: the role once, then content."""
        fields = {"role": self.role, "content": self.content, "tool_calls": self.tool_calls}
        return {name: value for name, value in fields.items() if value is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: str | None = None
