"""The decode loop of a static batch (:mod:`skillswitch.inference.static_decode`).

Two ways, the same tokens:

- **in lockstep**: each step is launched, its tokens are chosen and read on the host, every row
  is streamed and checked (stop strings, budgets, cancellation), then the next step is
  launched. Finished rows are fed a pad token.
- **ahead** (on CUDA, when every row is greedy and free of a grammar): the tokens of a step are
  chosen on the device (the argmax) and fed to the next step at once, so the GPU runs step
  ``n + 1`` while the host reads and handles step ``n``'s tokens; the host's per-row work and
  the wait for the copy no longer leave the GPU idle between steps. A row that finishes is
  known one step late: that step's token for it is computed and ignored, and when every row
  has finished by a stop (not by its budget, which is known in advance) one step is spent in
  vain. Sampled and grammar-held rows need the host to choose their tokens, so a batch with
  any of them runs in lockstep.

Either way the batch shrinks to its live rows when at most half are left with many tokens to go.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from skillswitch.inference.decode_rows import (
    DecodeClock,
    DecodeStats,
    FinishRow,
    Row,
    choose_tokens,
    keep_going,
)
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.static_decode import StaticBatch

__all__ = ["COMPACT_MIN_STEPS", "decode_static"]


COMPACT_MIN_STEPS = 32
"""A static batch drops its finished rows once at most half of its rows are left and one of them
has at least this many tokens to go: a few steps' time (a copy of the live rows' cache, and on
CUDA a new graph capture) for steps with half the rows or fewer."""


def decode_static(
    loaded: LoadedModel,
    rows: list[Row],
    finish: FinishRow,
    stats: DecodeStats,
    sizes: dict[int, int],
    started: float,
    *,
    compiled: bool,
    ahead: bool = True,
) -> None:
    """The batch in a :class:`StaticBatch`, ahead of the host (``ahead``, when the batch and the
    device allow it) or in lockstep: finished rows stay in the batch (their outputs ignored)
    until at most half the rows are left with at least ``COMPACT_MIN_STEPS`` to go, when the
    batch shrinks to its live rows."""
    for row in rows:
        sizes[id(row.job)] = len(rows)
    batch = StaticBatch(
        loaded,
        [row.job.prompt_ids for row in rows],
        max(row.job.params.max_new_tokens for row in rows),
        compiled=compiled,
    )
    try:
        if ahead and _runs_ahead(batch, rows):
            _decode_ahead(loaded, batch, rows, finish, stats, started)
        else:
            _decode_in_lockstep(loaded, batch, rows, finish, stats, started)
    finally:
        batch.close()


def _launches_ahead(device: Any) -> bool:
    """Whether work on ``device`` runs apart from the host, so a step launched ahead overlaps
    the host's work (a test stands in for CUDA here)."""
    return bool(device.type == "cuda")


def _runs_ahead(batch: StaticBatch, rows: Sequence[Row]) -> bool:
    """Whether ``batch`` decodes ahead of the host: on CUDA, every row's token the argmax."""
    return _launches_ahead(batch.device) and all(
        row.job.params.greedy and row.job.grammar is None for row in rows
    )


def _decode_in_lockstep(
    loaded: LoadedModel,
    batch: StaticBatch,
    rows: list[Row],
    finish: FinishRow,
    stats: DecodeStats,
    started: float,
) -> None:
    tokens = choose_tokens(batch.prefill(), rows)  # waits for the prefill's kernels
    stats.prefill_tokens += batch.prompt_tokens
    stats.prefill_s += time.perf_counter() - started
    clock = DecodeClock(stats)
    live = list(range(len(rows)))  # the batch rows still generating, and their rows
    live_rows = list(rows)
    while True:
        positions = batch.next_positions()
        clock.tick()
        kept = keep_going(loaded, live_rows, tokens, [positions[i] for i in live], finish)
        feeds = {live[j]: tokens[j] for j in kept}  # batch row -> the token it is fed
        live = [live[j] for j in kept]
        live_rows = [live_rows[j] for j in kept]
        if not live:
            break
        if _worth_compacting(batch.rows, live_rows):
            batch.keep_rows(live)
            feeds = {new: feeds[old] for new, old in enumerate(live)}
            live = list(range(len(live)))
            stats.compactions += 1
        feed = [feeds.get(i, batch.pad_id) for i in range(batch.rows)]
        logits = batch.step(feed)
        # Only the live rows' logits: a finished row's are ignored (and a grammar's mask
        # would be applied to the wrong row).
        live_logits = logits if len(live) == batch.rows else logits[live]
        tokens = choose_tokens(live_logits, live_rows)  # waits for the step
        _count_step(batch, stats)
        stats.decode_tokens += len(live)


def _decode_ahead(
    loaded: LoadedModel,
    batch: StaticBatch,
    rows: list[Row],
    finish: FinishRow,
    stats: DecodeStats,
    started: float,
) -> None:
    chosen = _ChosenTokens(batch.prefill(), batch.next_positions())
    chosen.wait()  # the prefill's time is its own
    stats.prefill_tokens += batch.prompt_tokens
    stats.prefill_s += time.perf_counter() - started
    clock = DecodeClock(stats)
    live = list(range(len(rows)))  # the batch rows still generating, and their rows
    live_rows = list(rows)
    while True:
        ahead = None
        if batch.room and _wants_another(live_rows):
            ahead = _launch(batch, chosen, stats)
        tokens = chosen.read(live)
        clock.tick()
        kept = keep_going(loaded, live_rows, tokens, chosen.positions_of(live), finish)
        live = [live[j] for j in kept]
        live_rows = [live_rows[j] for j in kept]
        if not live:
            break
        if ahead is None:  # a row goes on that was expected to finish: step now
            ahead = _launch(batch, chosen, stats)
        stats.decode_tokens += len(live)
        if _worth_compacting(batch.rows, live_rows):
            batch.keep_rows(live)
            ahead.select(live)
            live = list(range(len(live)))
            stats.compactions += 1
        chosen = ahead


def _wants_another(rows: Sequence[Row]) -> bool:
    """Whether some row may want a token after the one being chosen now (by its budget)."""
    return any(len(row.tracker.ids) + 1 < row.job.params.max_new_tokens for row in rows)


def _launch(batch: StaticBatch, chosen: _ChosenTokens, stats: DecodeStats) -> _ChosenTokens:
    """The next step launched on ``chosen``'s tokens (on the device); its tokens, chosen there."""
    logits = batch.step_chosen(chosen.on_device)
    _count_step(batch, stats)
    return _ChosenTokens(logits, batch.next_positions())


def _count_step(batch: StaticBatch, stats: DecodeStats) -> None:
    stats.decode_steps += 1
    stats.compiled_steps += batch.compiled
    stats.graph_steps += batch.replayed


class _ChosenTokens:
    """Each batch row's greedy token from one step's logits: chosen on the device, where the
    next step reads them, and copied to the host without the host waiting for it (on CUDA, into
    pinned memory, with an event to wait on when the host reads them).

    ``positions``: where each row's token will be fed (for the model's position limit).
    """

    def __init__(self, logits: Any, positions: list[int]) -> None:
        import torch

        self.on_device: Any = logits.argmax(dim=-1)
        self._positions = positions
        self._slots = list(range(len(positions)))  # batch row -> its place in the host copy
        self._ready: Any = None
        if self.on_device.device.type == "cuda":
            self._host: Any = torch.empty(self.on_device.shape, dtype=torch.long, pin_memory=True)
            self._host.copy_(self.on_device, non_blocking=True)
            event: Any = torch.cuda.Event  # untyped in torch's stubs
            self._ready = event()
            self._ready.record()
        else:
            self._host = self.on_device

    def wait(self) -> None:
        """Until the tokens are on the host."""
        if self._ready is not None:
            self._ready.synchronize()

    def read(self, rows: Sequence[int]) -> list[int]:
        """The tokens of batch ``rows``, on the host (waits for the copy)."""
        self.wait()
        values: list[int] = self._host.tolist()
        return [values[self._slots[r]] for r in rows]

    def positions_of(self, rows: Sequence[int]) -> list[int]:
        return [self._positions[self._slots[r]] for r in rows]

    def select(self, rows: Sequence[int]) -> None:
        """Follow :meth:`StaticBatch.keep_rows`: batch row ``i`` is now ``rows[i]`` of before."""
        import torch

        index = torch.tensor(list(rows), dtype=torch.long, device=self.on_device.device)
        self.on_device = self.on_device.index_select(0, index)
        self._slots = [self._slots[r] for r in rows]


def _worth_compacting(batch_rows: int, live: Sequence[Row]) -> bool:
    """Whether a static batch of ``batch_rows`` rows should shrink to its ``live`` rows."""
    if len(live) * 2 > batch_rows:
        return False
    to_go = max(row.job.params.max_new_tokens - len(row.tracker.ids) for row in live)
    return to_go >= COMPACT_MIN_STEPS
