"""The bodies of ``GET /v1/models`` and ``GET /v1/models/{model}`` (OpenAI's shapes, plus
``kind``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["ModelCard", "ModelList"]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "skillswitch"
    kind: Literal["chat", "embedding"]
    """chat: /v1/chat/completions and /v1/completions; embedding: /v1/embeddings."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
