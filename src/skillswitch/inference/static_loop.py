"""The decode loop of a static batch (:mod:`skillswitch.inference.static_decode`): every row
fed each step, finished rows fed a pad token until the batch shrinks to its live rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from skillswitch.inference.decode_rows import DecodeStats, FinishRow, Row, choose_tokens, keep_going
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
) -> None:
    """The batch in a :class:`StaticBatch`: finished rows are fed a pad token (the batch keeps
    its shape) and their outputs are ignored, until at most half the rows are left with at least
    ``COMPACT_MIN_STEPS`` to go, when the batch shrinks to its live rows."""
    for row in rows:
        sizes[id(row.job)] = len(rows)
    batch = StaticBatch(
        loaded,
        [row.job.prompt_ids for row in rows],
        max(row.job.params.max_new_tokens for row in rows),
        compiled=compiled,
    )
    try:
        tokens = choose_tokens(batch.prefill(), rows)  # waits for the prefill's kernels
        stats.prefill_tokens += batch.prompt_tokens
        stats.prefill_s += time.perf_counter() - started
        live = list(range(len(rows)))  # the batch rows still generating, and their rows
        live_rows = list(rows)
        while True:
            positions = batch.next_positions()
            kept = keep_going(loaded, live_rows, tokens, [positions[i] for i in live], finish)
            feeds = {live[j]: tokens[j] for j in kept}  # batch row -> the token it is fed
            live = [live[j] for j in kept]
            live_rows = [live_rows[j] for j in kept]
            if not live:
                return
            if _worth_compacting(batch.rows, live_rows):
                batch.keep_rows(live)
                feeds = {new: feeds[old] for new, old in enumerate(live)}
                live = list(range(len(live)))
                stats.compactions += 1
            feed = [feeds.get(i, batch.pad_id) for i in range(batch.rows)]
            step_started = time.perf_counter()
            logits = batch.step(feed)
            # Only the live rows' logits: a finished row's are ignored (and a grammar's mask
            # would be applied to the wrong row).
            live_logits = logits if len(live) == batch.rows else logits[live]
            tokens = choose_tokens(live_logits, live_rows)  # waits for the step
            stats.decode_s += time.perf_counter() - step_started
            stats.decode_steps += 1
            stats.compiled_steps += batch.compiled
            stats.graph_steps += batch.replayed
            stats.decode_tokens += len(live)
    finally:
        batch.close()


def _worth_compacting(batch_rows: int, live: Sequence[Row]) -> bool:
    """Whether a static batch of ``batch_rows`` rows should shrink to its ``live`` rows."""
    if len(live) * 2 > batch_rows:
        return False
    to_go = max(row.job.params.max_new_tokens - len(row.tracker.ids) for row in live)
    return to_go >= COMPACT_MIN_STEPS
