"""One batch of requests for one model: left-padded prefill, then one token per row per step.

This is skillswitch's own decode loop over the model's ``forward`` with transformers'
``DynamicCache``, rather than ``model.generate``: ``generate`` has one random generator for the
batch (no per-request seeds), one set of stop strings, streams only batches of one, and cannot
drop a cancelled row. Here each row has its own seed, stop strings, token budget and stream, and
rows that finish are removed from the batch (``DynamicCache.batch_select_indices``), so a long
answer does not make short ones pay for its steps.

Requests for the model that arrive while a batch decodes join it between steps (``join``:
prefilled apart, then their caches merged in), up to the batch's row limit. With ``static``, the
batch decodes in a preallocated cache instead (:mod:`skillswitch.inference.static_decode`) and
rows join only at its start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillswitch.inference.attention import attention_kernels
from skillswitch.inference.decode_rows import (
    DecodeClock,
    DecodeRow,
    DecodeStats,
    FinishRow,
    Row,
    TextTracker,
    choose_tokens,
    keep_going,
    row_generator,
    row_result,
    with_wait,
)
from skillswitch.inference.kv_cache import cache_argument, returned_cache
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.requests import FinishReason
from skillswitch.inference.static_decode import static_decodable
from skillswitch.inference.static_loop import decode_static

__all__ = ["Joiner", "decode_batch"]


Joiner = Callable[[int], Sequence[DecodeRow]]
"""Given the room left in a running batch, the queued requests that join it now (tokenized)."""


@dataclass(slots=True)
class _Batch:
    """The rows decoding together and their state: KV cache, attention mask, next positions."""

    rows: list[Row]
    cache: Any
    mask: Any
    next_positions: Any
    logits: Any
    pending: list[int] = field(default_factory=list)
    """The token each row feeds to the next step (chosen from ``logits``)."""


def decode_batch(
    loaded: LoadedModel,
    jobs: Sequence[DecodeRow],
    *,
    queued_s: Callable[[DecodeRow], float] = lambda _: 0.0,
    stats: DecodeStats | None = None,
    join: Joiner | None = None,
    max_rows: int | None = None,
    static: bool = False,
    compiled: bool = False,
    ahead: bool = True,
) -> None:
    """Generate for every job in one batch; each job is finished exactly once.

    ``join``: asked between steps for queued requests of the same model, which are prefilled
    and merged into the running batch (continuous batching, up to ``max_rows`` rows), when the
    model's cache allows it (``DynamicCache`` with full-attention layers).

    ``static``: decode in a preallocated cache, each step replayed as a CUDA graph on CUDA
    (:mod:`skillswitch.inference.static_decode`; no joining), when the model allows it;
    ``compiled``: its step compiled with ``torch.compile`` first
    (:mod:`skillswitch.inference.step_compiler`); ``ahead``: on CUDA, a greedy static batch's
    steps launched ahead of the host (:mod:`skillswitch.inference.static_loop`).
    """
    import torch

    device = loaded.model.device
    started = time.perf_counter()
    stats = stats if stats is not None else DecodeStats()
    waits: dict[int, float] = {}
    sizes: dict[int, int] = {}

    def begin(new_jobs: Sequence[DecodeRow]) -> list[Row]:
        rows = []
        for job in new_jobs:
            waits[id(job)] = queued_s(job)
            if job.cancelled:
                job.finish(
                    row_result(loaded, job, TextTracker(loaded.tokenizer, ()), "cancelled", 0, 0)
                )
                continue
            tracker = TextTracker(
                loaded.tokenizer,
                job.params.stop,
                incremental=job.incremental,
                keep=None if job.grammar is None else job.grammar.kept_tokens,
            )
            rows.append(Row(job, tracker, row_generator(job, device)))
        return rows

    def finish(row: Row, reason: FinishReason) -> None:
        tail = row.tracker.flush()
        if tail:
            row.job.emit(tail)
        elapsed = time.perf_counter() - row.started
        result = row_result(loaded, row.job, row.tracker, reason, elapsed, sizes[id(row.job)])
        row.job.finish(with_wait(result, waits[id(row.job)]))

    rows = begin(jobs)
    if not rows:
        return
    limit = max_rows or len(rows)
    if static and static_decodable(loaded):
        with torch.inference_mode(), attention_kernels(device):
            decode_static(
                loaded, rows, finish, stats, sizes, started, compiled=compiled, ahead=ahead
            )
        return
    with torch.inference_mode(), attention_kernels(device):
        batch = _prefill(loaded, rows, stats, sizes)
        tokens = choose_tokens(batch.logits, batch.rows)  # waits for the prefill's kernels
        stats.prefill_s += time.perf_counter() - started
        clock = DecodeClock(stats)
        while True:
            clock.tick()
            _advance(loaded, batch, tokens, finish)
            room = limit - len(batch.rows)
            if join is not None and room > 0 and _joinable(batch.cache):
                newcomers = begin(join(room))
                if newcomers:
                    prefill_started = time.perf_counter()
                    joined = _prefill(loaded, newcomers, stats, sizes, len(batch.rows))
                    joined_tokens = choose_tokens(joined.logits, joined.rows)
                    joined_s = time.perf_counter() - prefill_started
                    stats.prefill_s += joined_s
                    clock.leave_out(joined_s)
                    _advance(loaded, joined, joined_tokens, finish)
                    batch = _merge(batch, joined)
            if not batch.rows:
                break
            _step(loaded, batch)
            tokens = choose_tokens(batch.logits, batch.rows)  # waits for the step's kernels
            stats.decode_steps += 1
            stats.decode_tokens += len(batch.rows)


def _prefill(
    loaded: LoadedModel,
    rows: list[Row],
    stats: DecodeStats,
    sizes: dict[int, int],
    already: int = 0,
) -> _Batch:
    """Left-padded prompts through the model: a batch with its cache and first logits."""
    import torch

    model, device = loaded.model, loaded.model.device
    width = max(len(r.job.prompt_ids) for r in rows)
    input_ids = torch.full((len(rows), width), loaded.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids = row.job.prompt_ids
        input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[i, width - len(ids) :] = 1
        sizes[id(row.job)] = already + len(rows)
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    stats.prefill_tokens += int(mask.sum())
    cache = returned_cache(out)
    return _Batch(rows, cache, mask, positions[:, -1:] + 1, out.logits[:, -1, :])


def _advance(
    loaded: LoadedModel,
    batch: _Batch,
    tokens: list[int],
    finish: FinishRow,
) -> None:
    """Stream each row's next token (``tokens``), finish the rows that are done, drop them."""
    import torch

    positions = batch.next_positions[:, 0].tolist()  # one copy, not one device sync per row
    keep = keep_going(loaded, batch.rows, tokens, positions, finish)
    if len(keep) < len(batch.rows) and keep:
        index = torch.tensor(keep, device=batch.mask.device)
        batch.cache.batch_select_indices(index)
        batch.mask, batch.next_positions = batch.mask[index], batch.next_positions[index]
    batch.rows = [batch.rows[i] for i in keep]
    batch.pending = [tokens[i] for i in keep]


def _step(loaded: LoadedModel, batch: _Batch) -> None:
    """One decode step: feed every row its pending token."""
    import torch

    device = batch.mask.device
    step_ids = torch.tensor([[t] for t in batch.pending], dtype=torch.long, device=device)
    batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
    out = loaded.model(
        input_ids=step_ids,
        attention_mask=batch.mask,
        position_ids=batch.next_positions,
        use_cache=True,
        **cache_argument(loaded.model, batch.cache),
    )
    batch.cache = returned_cache(out)
    batch.logits = out.logits[:, -1, :]
    batch.next_positions = batch.next_positions + 1


def _joinable(cache: Any) -> bool:
    """Rows can join when every layer keeps plain key/value tensors (no sliding windows, no
    quantised or offloaded layers): those are padded on the left and concatenated."""
    layers = getattr(cache, "layers", None) or []
    return bool(layers) and all(
        type(layer).__name__ == "DynamicLayer" and getattr(layer, "keys", None) is not None
        for layer in layers
    )


def _merge(running: _Batch, joined: _Batch) -> _Batch:
    """One batch of both: caches and masks left-padded to the same length, rows concatenated.

    Padded key/value slots are masked out, and every row keeps its own positions, so a joined row
    decodes exactly as it would have alone.
    """
    import torch

    if not joined.rows:
        return running
    if not running.rows:
        return joined
    length = max(running.mask.shape[1], joined.mask.shape[1])

    def left_pad(tensor: Any, dim: int) -> Any:
        missing = length - tensor.shape[dim]
        if missing == 0:
            return tensor
        shape = list(tensor.shape)
        shape[dim] = missing
        return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

    for mine, theirs in zip(running.cache.layers, joined.cache.layers, strict=True):
        mine.keys = torch.cat([left_pad(mine.keys, 2), left_pad(theirs.keys, 2)], dim=0)
        mine.values = torch.cat([left_pad(mine.values, 2), left_pad(theirs.values, 2)], dim=0)
    running.mask = torch.cat([left_pad(running.mask, 1), left_pad(joined.mask, 1)], dim=0)
    running.next_positions = torch.cat([running.next_positions, joined.next_positions], dim=0)
    running.rows = running.rows + joined.rows
    running.pending = running.pending + joined.pending
    return running
