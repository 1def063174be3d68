"""Thread limits for per-request numpy work.

One request's classifier work is a few small matrix products. With a multi-threaded BLAS those
products wait on thread hand-offs, and on a busy machine (a server under load, ONNX Runtime's
pool just finished) a 0.5 ms product was measured at 8-12 ms on 2 cores. Small batches run
single-threaded; parallelism comes from serving requests concurrently.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

__all__ = ["SMALL_BATCH", "single_threaded_blas"]

SMALL_BATCH = 64


@functools.cache
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a hard dependency, but never worth a crash
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas(rows: int) -> Iterator[None]:
    """Limit BLAS to one thread while scoring ``rows`` queries, when ``rows`` is small."""
    controller = _controller()
    if controller is None or rows >= SMALL_BATCH:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
