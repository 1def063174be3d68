"""The route of ``GET /healthz`` (open without the API key, for probes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz")
async def health(request: Request) -> dict[str, Any]:
    """``status: ok``, the number of skills, and each expert's circuit breaker (``closed``;
    ``open`` while it is failing, ``half_open`` when a trial call may go through)."""
    switch: Switch = request.app.state.switch
    return {
        "status": "ok",
        "skills": len(switch.router.skills),
        "experts": {name: switch.dispatcher.breaker(name).state for name in switch.expert_names},
    }
