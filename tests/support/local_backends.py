"""Helpers for tests that drive a ``LocalBackend``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from skillswitch.inference import GenerationParams, GenerationResult, LocalBackend
from skillswitch.inference.policy import SchedulerSettings

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "Write a short poem about the sea, the wind and the sky."}],
    [{"role": "user", "content": "Solve for x: 3x + 5 = 20"}],
]
"""Chat prompts of different lengths, for the decode tests that compare the loops' tokens."""


@contextlib.contextmanager
def dynamic_and_static(folders: Mapping[str, Path]) -> Iterator[dict[bool, LocalBackend]]:
    """Two CPU backends of the same model folders, keyed by ``static_decode`` (False: the
    dynamic loop, True: static batches), closed at the end."""
    made = {
        static: LocalBackend.from_folders(
            dict(folders), device="cpu", settings=SchedulerSettings(static_decode=static)
        )
        for static in (False, True)
    }
    try:
        yield made
    finally:
        for backend in made.values():
            backend.close()


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
