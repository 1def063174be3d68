"""The route of ``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skillswitch.server.models_api.completions.protocol import CompletionRequest
from skillswitch.server.models_api.completions.serving import CompletionsServing
from skillswitch.server.wire import parse_body

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def create_completion(request: Request) -> Response:
    """OpenAI's (legacy) completions on a local chat model's raw text; ``stream: true`` for
    server-sent events."""
    serving: CompletionsServing = request.app.state.completions
    body = await parse_body(request, CompletionRequest)
    return await serving.create(body, request)
