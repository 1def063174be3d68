"""The bodies of ``GET /v1/models`` and ``GET /v1/models/{model}`` (OpenAI's shapes, plus
``kind``, ``description`` and ``experts``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from skillswitch.server.api.targets import TargetKind

__all__ = ["ModelCard", "ModelList"]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "skillswitch"
    kind: TargetKind
    """auto: routed by skill; skill: sent to one skill's experts; expert: one expert, no routing."""
    description: str = ""
    experts: list[str]
    """The experts that may answer (auto: all of them)."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
