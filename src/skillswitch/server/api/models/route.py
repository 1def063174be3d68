"""The routes of ``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from skillswitch.server.api.models.serving import ModelsServing

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    """``skillswitch`` (automatic routing), ``skillswitch/<skill>`` for each skill some expert
    serves, and each configured expert."""
    serving: ModelsServing = request.app.state.models
    return serving.list().model_dump(mode="json")


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> dict[str, Any]:
    serving: ModelsServing = request.app.state.models
    return serving.get(model).model_dump(mode="json")
