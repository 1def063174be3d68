"""The route of ``GET /healthz`` (open without the API key, for probes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz")
async def health(request: Request) -> dict[str, Any]:
    """``status: ok`` with the backend's state: device, budget, resident models, queued
    requests per model, loads, evictions and batches."""
    backend: LocalBackend = request.app.state.backend
    return {"status": "ok", "models": len(backend.registry), **backend.status()}
