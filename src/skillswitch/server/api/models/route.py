"""The routes of ``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from skillswitch.server.api.models.protocol import ModelCard, ModelList
from skillswitch.server.api.models.serving import ModelsServing
from skillswitch.server.api.openapi import GUARD_ERRORS, error_responses

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/v1/models",
    response_model=None,
    responses={200: {"model": ModelList}, **error_responses(*GUARD_ERRORS)},
)
async def list_models(request: Request) -> dict[str, Any]:
    """``skillswitch`` (automatic routing), ``skillswitch/<skill>`` for each skill some expert
    serves, and each configured expert."""
    serving: ModelsServing = request.app.state.models
    return serving.list().model_dump(mode="json")


@router.get(
    "/v1/models/{model:path}",
    response_model=None,
    responses={200: {"model": ModelCard}, **error_responses(404, *GUARD_ERRORS)},
)
async def retrieve_model(model: str, request: Request) -> dict[str, Any]:
    serving: ModelsServing = request.app.state.models
    return serving.get(model).model_dump(mode="json")
