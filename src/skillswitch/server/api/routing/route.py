"""The route of ``POST /v1/route``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from skillswitch.server.api.common import ignored
from skillswitch.server.api.openapi import GUARD_ERRORS, error_responses, json_request_body
from skillswitch.server.api.routing.protocol import RouteRequest
from skillswitch.server.api.routing.serving import RouteServing
from skillswitch.server.wire import parse_body

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/route",
    response_model=None,
    openapi_extra=json_request_body(RouteRequest),
    responses=error_responses(400, *GUARD_ERRORS),
)
async def route(request: Request) -> JSONResponse:
    """The routing decision alone: skills and scores, or out of scope; no expert is called."""
    serving: RouteServing = request.app.state.routing
    body = await parse_body(request, RouteRequest)
    headers = ignored("route", body.ignored_fields())
    decision: dict[str, Any] = await serving.decide(body)
    return JSONResponse(decision, headers=headers)
