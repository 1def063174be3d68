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
from typing import Any, Protocol

from skillswitch.inference.attention import attention_kernels
from skillswitch.inference.grammar import GrammarMatcher, mask_disallowed
from skillswitch.inference.kv_cache import cache_argument, returned_cache
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.requests import FinishReason, GenerationParams, GenerationResult
from skillswitch.inference.static_decode import StaticBatch, static_decodable

__all__ = ["DecodeRow", "DecodeStats", "Joiner", "TextTracker", "decode_batch"]


class DecodeRow(Protocol):
    """What the loop needs of a request; the scheduler's jobs provide it."""

    prompt_ids: list[int]
    params: GenerationParams
    incremental: bool
    """Whether its text is streamed as it is generated (else decoded once at the end)."""
    grammar: GrammarMatcher | None
    """Its place in ``params.grammar`` (constrained decoding), started for this model."""

    @property
    def cancelled(self) -> bool: ...

    def emit(self, text: str) -> None: ...

    def finish(self, result: GenerationResult) -> None: ...


class TextTracker:
    """Token ids to text, incrementally, with stop strings.

    Detokenizes a sliding window (the tokens since the previous chunk plus the new ones) so each
    step costs the same however long the answer is, and holds back a partial multi-byte character
    or a tail that may be the start of a stop string, so streamed text is never taken back.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], *, incremental: bool = True) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(stop)
        # Nobody reads the text before the end and no stop string needs it: decode once, at the end.
        self._incremental = incremental or bool(self._stop)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self.ids: list[int] = []
        self.text = ""
        self._prefix_offset = 0
        self._read_offset = 0
        self._emitted = 0
        self.stopped = False

    def add(self, token_id: int) -> str:
        """Append one token; the text that is now safe to stream."""
        self.ids.append(token_id)
        if not self._incremental:
            return ""
        decode = self._tokenizer.decode
        prefix = decode(self.ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        full = decode(self.ids[self._prefix_offset :], skip_special_tokens=True)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            start = len(self.text)
            self.text += full[len(prefix) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.ids)
            self._check_stops(start)
        return self._release(final=self.stopped)

    def flush(self) -> str:
        """Everything not yet streamed (at the end of the answer)."""
        if not self._incremental:
            self.text = self._tokenizer.decode(self.ids, skip_special_tokens=True)
        elif not self.stopped and self._read_offset < len(self.ids):
            # Tokens held back as an unfinished character: at the end they are what they are.
            decode = self._tokenizer.decode
            prefix = decode(
                self.ids[self._prefix_offset : self._read_offset], skip_special_tokens=True
            )
            full = decode(self.ids[self._prefix_offset :], skip_special_tokens=True)
            self.text += full[len(prefix) :]
            self._read_offset = len(self.ids)
        return self._release(final=True)

    def _check_stops(self, start: int) -> None:
        if not self._stop:
            return
        search_from = max(0, start - self._hold)
        hits = [i for s in self._stop if (i := self.text.find(s, search_from)) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _release(self, *, final: bool) -> str:
        end = len(self.text)
        if not final and self._stop:
            end -= self._held_tail()
        if end <= self._emitted:
            return ""
        chunk = self.text[self._emitted : end]
        self._emitted = end
        return chunk

    def _held_tail(self) -> int:
        """Length of the longest suffix of the text that begins some stop string."""
        for size in range(min(self._hold, len(self.text)), 0, -1):
            tail = self.text[-size:]
            if any(s.startswith(tail) for s in self._stop):
                return size
        return 0


@dataclass(slots=True)
class DecodeStats:
    """Where a model's time went, summed over its batches (for metrics and benchmarks)."""

    prefill_s: float = 0.0
    """Wall time of the prefills, each until its first tokens are chosen (on a GPU, the wait
    for its kernels included)."""
    prefill_tokens: int = 0
    decode_s: float = 0.0
    """Wall time of the decode steps, each from its launch until its tokens are chosen: the
    GPU's work and the wait for it included, the per-row bookkeeping between steps not."""
    decode_steps: int = 0
    decode_tokens: int = 0
    """Tokens generated in decode steps (rows x steps)."""
    compiled_steps: int = 0
    """Decode steps that ran compiled (``compile_decode``)."""
    graph_steps: int = 0
    """Decode steps replayed from a captured CUDA graph (``static_decode`` on CUDA)."""
    compactions: int = 0
    """Static batches shrunk to their live rows (:meth:`StaticBatch.keep_rows`)."""


COMPACT_MIN_STEPS = 32
"""A static batch drops its finished rows once at most half of its rows are left and one of them
has at least this many tokens to go: a few steps' time (a copy of the live rows' cache, and on
CUDA a new graph capture) for steps with half the rows or fewer."""


@dataclass(slots=True)
class _Row:
    job: DecodeRow
    tracker: TextTracker
    generator: Any = None
    started: float = field(default_factory=time.perf_counter)


Joiner = Callable[[int], Sequence[DecodeRow]]
"""Given the room left in a running batch, the queued requests that join it now (tokenized)."""


@dataclass(slots=True)
class _Batch:
    """The rows decoding together and their state: KV cache, attention mask, next positions."""

    rows: list[_Row]
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
) -> None:
    """Generate for every job in one batch; each job is finished exactly once.

    ``join``: asked between steps for queued requests of the same model, which are prefilled
    and merged into the running batch (continuous batching, up to ``max_rows`` rows), when the
    model's cache allows it (``DynamicCache`` with full-attention layers).

    ``static``: decode in a preallocated cache, each step replayed as a CUDA graph on CUDA
    (:mod:`skillswitch.inference.static_decode`; no joining), when the model allows it;
    ``compiled``: its step compiled with ``torch.compile`` first
    (:mod:`skillswitch.inference.step_compiler`).
    """
    import torch

    device = loaded.model.device
    started = time.perf_counter()
    stats = stats if stats is not None else DecodeStats()
    waits: dict[int, float] = {}
    sizes: dict[int, int] = {}

    def begin(new_jobs: Sequence[DecodeRow]) -> list[_Row]:
        rows = []
        for job in new_jobs:
            waits[id(job)] = queued_s(job)
            if job.cancelled:
                job.finish(
                    _result(loaded, job, TextTracker(loaded.tokenizer, ()), "cancelled", 0, 0)
                )
                continue
            tracker = TextTracker(loaded.tokenizer, job.params.stop, incremental=job.incremental)
            rows.append(_Row(job, tracker, _generator(job, device)))
        return rows

    def finish(row: _Row, reason: FinishReason) -> None:
        tail = row.tracker.flush()
        if tail:
            row.job.emit(tail)
        elapsed = time.perf_counter() - row.started
        result = _result(loaded, row.job, row.tracker, reason, elapsed, sizes[id(row.job)])
        row.job.finish(_with_wait(result, waits[id(row.job)]))

    rows = begin(jobs)
    if not rows:
        return
    limit = max_rows or len(rows)
    if static and static_decodable(loaded):
        with torch.inference_mode(), attention_kernels(device):
            _decode_static(loaded, rows, finish, stats, sizes, started, compiled=compiled)
        return
    with torch.inference_mode(), attention_kernels(device):
        batch = _prefill(loaded, rows, stats, sizes)
        tokens = _choose(batch.logits, batch.rows)  # waits for the prefill's kernels
        stats.prefill_s += time.perf_counter() - started
        while True:
            _advance(loaded, batch, tokens, finish)
            room = limit - len(batch.rows)
            if join is not None and room > 0 and _joinable(batch.cache):
                newcomers = begin(join(room))
                if newcomers:
                    prefill_started = time.perf_counter()
                    joined = _prefill(loaded, newcomers, stats, sizes, len(batch.rows))
                    joined_tokens = _choose(joined.logits, joined.rows)
                    stats.prefill_s += time.perf_counter() - prefill_started
                    _advance(loaded, joined, joined_tokens, finish)
                    batch = _merge(batch, joined)
            if not batch.rows:
                return
            step_started = time.perf_counter()
            _step(loaded, batch)
            tokens = _choose(batch.logits, batch.rows)  # waits for the step's kernels
            stats.decode_s += time.perf_counter() - step_started
            stats.decode_steps += 1
            stats.decode_tokens += len(batch.rows)


def _decode_static(
    loaded: LoadedModel,
    rows: list[_Row],
    finish: Callable[[_Row, FinishReason], None],
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
        tokens = _choose(batch.prefill(), rows)  # waits for the prefill's kernels
        stats.prefill_tokens += batch.prompt_tokens
        stats.prefill_s += time.perf_counter() - started
        live = list(range(len(rows)))  # the batch rows still generating, and their rows
        live_rows = list(rows)
        while True:
            positions = batch.next_positions()
            kept = _keep(loaded, live_rows, tokens, [positions[i] for i in live], finish)
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
            tokens = _choose(live_logits, live_rows)  # waits for the step
            stats.decode_s += time.perf_counter() - step_started
            stats.decode_steps += 1
            stats.compiled_steps += batch.compiled
            stats.graph_steps += batch.replayed
            stats.decode_tokens += len(live)
    finally:
        batch.close()


def _worth_compacting(batch_rows: int, live: Sequence[_Row]) -> bool:
    """Whether a static batch of ``batch_rows`` rows should shrink to its ``live`` rows."""
    if len(live) * 2 > batch_rows:
        return False
    to_go = max(row.job.params.max_new_tokens - len(row.tracker.ids) for row in live)
    return to_go >= COMPACT_MIN_STEPS


def _prefill(
    loaded: LoadedModel,
    rows: list[_Row],
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
    finish: Callable[[_Row, FinishReason], None],
) -> None:
    """Stream each row's next token (``tokens``), finish the rows that are done, drop them."""
    import torch

    positions = batch.next_positions[:, 0].tolist()  # one copy, not one device sync per row
    keep = _keep(loaded, batch.rows, tokens, positions, finish)
    if len(keep) < len(batch.rows) and keep:
        index = torch.tensor(keep, device=batch.mask.device)
        batch.cache.batch_select_indices(index)
        batch.mask, batch.next_positions = batch.mask[index], batch.next_positions[index]
    batch.rows = [batch.rows[i] for i in keep]
    batch.pending = [tokens[i] for i in keep]


def _keep(
    loaded: LoadedModel,
    rows: list[_Row],
    tokens: list[int],
    positions: list[int],
    finish: Callable[[_Row, FinishReason], None],
) -> list[int]:
    """Stream each row's next token (``tokens``, chosen by :func:`_choose`); finish the rows
    that are done. The indices of the rows that go on."""
    limit = loaded.max_positions or 1 << 30
    keep: list[int] = []
    for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
        if row.job.cancelled:
            finish(row, "cancelled")
        elif token in loaded.eos_token_ids:
            finish(row, "stop")
        elif row.job.grammar is not None and not row.job.grammar.accept(token):
            finish(row, "stop")  # cannot happen with the mask applied; never loops if it does
        else:
            chunk = row.tracker.add(token)
            if chunk:
                row.job.emit(chunk)
            if row.tracker.stopped or (row.job.grammar is not None and row.job.grammar.complete):
                finish(row, "stop")
            elif len(row.tracker.ids) >= row.job.params.max_new_tokens or positions[i] + 1 >= limit:
                finish(row, "length")
            else:
                keep.append(i)
    return keep


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


def _choose(logits: Any, rows: Sequence[_Row]) -> list[int]:
    """Next token of every row: one argmax for the greedy rows, a seeded draw for the others;
    rows held to a grammar choose among the tokens it allows."""
    import torch

    held = [(i, row.job.grammar) for i, row in enumerate(rows) if row.job.grammar is not None]
    if held:
        mask_disallowed(logits, [i for i, _ in held], [matcher for _, matcher in held])
    tokens: list[int] = logits.argmax(dim=-1).tolist()
    for i, row in enumerate(rows):
        params = row.job.params
        if params.greedy:
            continue
        scores = logits[i].float() / params.temperature
        probs = torch.softmax(scores, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(-1)
            sorted_probs[(cumulative - sorted_probs) > params.top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        tokens[i] = int(torch.multinomial(probs, 1, generator=row.generator))
    return tokens


def _generator(job: DecodeRow, device: Any) -> Any:
    if job.params.greedy:
        return None
    import secrets

    import torch

    seed = job.params.seed if job.params.seed is not None else secrets.randbits(63)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _result(
    loaded: LoadedModel,
    job: DecodeRow,
    tracker: TextTracker,
    reason: FinishReason,
    elapsed: float,
    batch_size: int,
) -> GenerationResult:
    return GenerationResult(
        model=loaded.name,
        text=tracker.text,
        token_ids=tuple(tracker.ids),
        prompt_tokens=len(job.prompt_ids),
        finish_reason=reason,
        generation_s=elapsed,
        batch_size=batch_size,
    )


def _with_wait(result: GenerationResult, queued_s: float) -> GenerationResult:
    from dataclasses import replace

    return replace(result, queued_s=queued_s)
