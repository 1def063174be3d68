"""Which expert's queue runs next: the scheduler's policy as a pure function.

In order:

1. Fairness cap: a request that has waited ``max_wait_s`` is served next, resident or not, so a
   busy resident expert cannot starve the others.
2. Resident experts drain first: of the experts already on the device with queued requests, the
   one with the longest queue runs.
3. Otherwise a swap: the expert with the longest queue is loaded, at once if it fits beside the
   resident ones; if it would evict one, only when its queue is worth the load (``swap_min_queue``
   requests, or its oldest has waited ``swap_max_wait_s``), so that a lone request does not throw
   out a model that the next request may need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["QueueView", "SchedulerSettings", "choose_next"]


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    max_batch_size: int = 32
    max_wait_s: float = 5.0
    """Fairness cap: a request waiting this long is served next."""
    swap_min_queue: int = 4
    """Queued requests that justify evicting a resident model to load another."""
    swap_max_wait_s: float = 0.05
    """...or how long the oldest of them may wait for more to arrive first."""
    join_running: bool = True
    """Continuous batching: requests for a model that is generating join its running batch
    between steps (while it has room and no other model's request has waited ``max_wait_s``)."""
    static_decode: bool = False
    """Decode in a preallocated KV cache, the step replayed as a CUDA graph on CUDA
    (:mod:`skillswitch.inference.static_decode`): one launch per step instead of one per kernel.
    Requests then join only at the start of a batch; models with sliding-window layers decode
    dynamically."""
    compile_decode: bool = False
    """With ``static_decode``: the decode step compiled with ``torch.compile`` before it is
    captured (:mod:`skillswitch.inference.step_compiler`): its small kernels fused. The first
    batch of each model class waits for the compile."""
    decode_ahead: bool = True
    """With ``static_decode`` on CUDA: a batch whose rows are all greedy and free of a grammar
    launches each step on the device's tokens of the one before, so the GPU runs while the host
    streams and checks them (:mod:`skillswitch.inference.static_loop`); False: lockstep."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size is {self.max_batch_size}; give 1 or more")
        if self.max_wait_s <= 0 or self.swap_max_wait_s < 0:
            raise ValueError("max_wait_s must be > 0 and swap_max_wait_s >= 0")
        if self.compile_decode and not self.static_decode:
            raise ValueError(
                "compile_decode compiles the static decode step; set static_decode too"
            )


@dataclass(frozen=True, slots=True)
class QueueView:
    """One expert's non-empty queue as the policy sees it."""

    model: str
    length: int
    oldest: float
    """When its oldest request was submitted (monotonic seconds)."""
    resident: bool
    fits: bool
    """Whether loading it needs no eviction (True when resident)."""


def choose_next(
    queues: Sequence[QueueView], settings: SchedulerSettings, now: float
) -> tuple[str | None, float | None]:
    """The model to run next, or (None, seconds to wait before asking again; None: until woken)."""
    if not queues:
        return None, None
    first = min(queues, key=lambda q: q.oldest)
    if now - first.oldest >= settings.max_wait_s:
        return first.model, None
    resident = [q for q in queues if q.resident]
    if resident:
        return max(resident, key=lambda q: (q.length, -q.oldest)).model, None
    best = max(queues, key=lambda q: (q.length, -q.oldest))
    if best.fits or best.length >= settings.swap_min_queue:
        return best.model, None
    age = now - best.oldest
    if age >= settings.swap_max_wait_s:
        return best.model, None
    return None, settings.swap_max_wait_s - age
