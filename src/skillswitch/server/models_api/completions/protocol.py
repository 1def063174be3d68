"""The request and response bodies of ``POST /v1/completions`` (OpenAI's legacy shapes)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from skillswitch.server.models_api.common import SamplingRequest, Usage

__all__ = ["Completion", "CompletionChunk", "CompletionRequest"]

DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for completions (chat completions have none)."""


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            raise ValueError(f"prompt is token ids ({shown}); send the prompt as text")
        if isinstance(value, list) and len(value) != 1:
            raise ValueError(
                f"prompt is a list of {len(value)} items; this server completes one prompt "
                "per request: send a string (or a list of one string)"
            )
        raise ValueError(f"prompt is {shown}; send a string")

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class Choice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: str | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
