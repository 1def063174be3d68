"""The route of ``GET /metrics`` (behind the API key when the server has one)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from skillswitch.server.api.metrics.collectors import Metrics
from skillswitch.server.api.openapi import error_responses

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/metrics",
    response_model=None,
    response_class=PlainTextResponse,  # what the spec says: the handler sets the exact type
    responses=error_responses(401),
)
async def metrics(request: Request) -> Response:
    """Prometheus' text format: requests, latencies per skill and expert, errors, retries,
    tokens and cost."""
    collected: Metrics = request.app.state.metrics
    return Response(collected.exposition(), media_type=CONTENT_TYPE_LATEST)
