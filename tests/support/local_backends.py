"""Helpers for tests that drive a ``LocalBackend``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skillswitch.inference import GenerationParams, GenerationResult, LocalBackend


async def generate_together(
    backend: LocalBackend,
    model: str,
    prompts: Sequence[Any],
    params: Sequence[GenerationParams],
) -> list[GenerationResult]:
    """Submit every prompt (each with its params) before awaiting any, so that they may share
    a batch; the results in order."""
    handles = [backend.submit(model, p, q) for p, q in zip(prompts, params, strict=True)]
    return [await handle.result() for handle in handles]
