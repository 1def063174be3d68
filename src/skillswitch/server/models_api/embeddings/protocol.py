"""The request and response bodies of ``POST /v1/embeddings`` (OpenAI's shapes)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["EmbeddingData", "EmbeddingRequest", "EmbeddingResponse", "EmbeddingUsage"]

MAX_INPUTS = 2048
"""OpenAI's limit on texts per request."""


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if not value:
                raise ValueError("input is an empty list; send at least one text")
            if len(value) > MAX_INPUTS:
                raise ValueError(f"input holds {len(value)} texts; send at most {MAX_INPUTS}")
            return value
        if isinstance(value, list) and all(
            isinstance(v, int) or (isinstance(v, list) and all(isinstance(i, int) for i in v))
            for v in value
        ):
            raise ValueError(f"input is token ids ({shown}); send the texts")
        raise ValueError(f"input is {shown}; send a string or a list of strings")

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)

    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    """The floats, or with ``encoding_format: base64`` their little-endian float32 bytes."""


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
