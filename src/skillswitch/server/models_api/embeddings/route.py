"""The route of ``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skillswitch.server.models_api.embeddings.protocol import EmbeddingRequest
from skillswitch.server.models_api.embeddings.serving import EmbeddingsServing
from skillswitch.server.wire import parse_body

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/embeddings", response_model=None)
async def create_embeddings(request: Request) -> Response:
    """Unit-norm vectors from a local embedding model (mean pooling)."""
    serving: EmbeddingsServing = request.app.state.embeddings
    body = await parse_body(request, EmbeddingRequest)
    return await serving.create(body, request)
