"""A request's row in a decode batch, whichever loop decodes it: its text (streamed as it grows,
cut at a stop string), the choice of its next token (greedy, seeded sampling, or held to a
grammar), when it is done, and its result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from skillswitch.inference.grammar import GrammarMatcher, mask_disallowed
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.requests import FinishReason, GenerationParams, GenerationResult

__all__ = [
    "DecodeClock",
    "DecodeRow",
    "DecodeStats",
    "FinishRow",
    "Row",
    "TextTracker",
    "choose_tokens",
    "keep_going",
    "row_generator",
    "row_result",
    "with_wait",
]


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

    def __init__(
        self,
        tokenizer: Any,
        stop: Sequence[str],
        *,
        incremental: bool = True,
        keep: Mapping[int, str] | None = None,
    ) -> None:
        """``keep``: special tokens that are part of the text (a tool call's tag), by id;
        other special tokens are dropped."""
        self._tokenizer = tokenizer
        self._keep = keep or {}
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
        decode = self._decode
        prefix = decode(self.ids[self._prefix_offset : self._read_offset])
        full = decode(self.ids[self._prefix_offset :])
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
            self.text = self._decode(self.ids)
        elif not self.stopped and self._read_offset < len(self.ids):
            # Tokens held back as an unfinished character: at the end they are what they are.
            prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
            full = self._decode(self.ids[self._prefix_offset :])
            self.text += full[len(prefix) :]
            self._read_offset = len(self.ids)
        return self._release(final=True)

    def _decode(self, ids: list[int]) -> str:
        """The text of ``ids``, special tokens dropped but those kept."""
        decode = self._tokenizer.decode
        if not self._keep or not any(token in self._keep for token in ids):
            return str(decode(ids, skip_special_tokens=True))
        parts, since = [], 0
        for at, token in enumerate(ids):
            if token in self._keep:
                parts += [decode(ids[since:at], skip_special_tokens=True), self._keep[token]]
                since = at + 1
        parts.append(decode(ids[since:], skip_special_tokens=True))
        return "".join(parts)

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
    """Wall time from the end of each batch's prefill until the host takes up its last tokens
    (:class:`DecodeClock`): its decode steps, the wait for them and the per-row work between
    them (streaming, stop strings, finishing rows), less the prefills of rows that joined it.
    Divided by ``decode_steps``, the time a step really costs, whether the steps run one after
    another or overlap the host's work."""
    decode_steps: int = 0
    decode_tokens: int = 0
    """Tokens generated in decode steps (rows x steps)."""
    compiled_steps: int = 0
    """Decode steps that ran compiled (``compile_decode``)."""
    graph_steps: int = 0
    """Decode steps replayed from a captured CUDA graph (``static_decode`` on CUDA)."""
    compactions: int = 0
    """Static batches shrunk to their live rows (:meth:`StaticBatch.keep_rows`)."""


class DecodeClock:
    """Adds a batch's decode time to ``stats.decode_s`` as it goes, at each :meth:`tick`: the
    loop ticks before it hands a step's tokens to the rows, so the time is counted before a
    row's result can reach a caller (who may read the stats on it)."""

    def __init__(self, stats: DecodeStats) -> None:
        self._stats = stats
        self._mark = time.perf_counter()
        self._left_out = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        self._stats.decode_s += now - self._mark - self._left_out
        self._mark, self._left_out = now, 0.0

    def leave_out(self, seconds: float) -> None:
        """Not decode time (a prefill of joining rows), though it passed since the last tick."""
        self._left_out += seconds


@dataclass(slots=True)
class Row:
    job: DecodeRow
    tracker: TextTracker
    generator: Any = None
    started: float = field(default_factory=time.perf_counter)


FinishRow = Callable[[Row, FinishReason], None]
"""Ends a row: streams what its text still holds back and hands the job its result."""


def keep_going(
    loaded: LoadedModel,
    rows: list[Row],
    tokens: list[int],
    positions: list[int],
    finish: FinishRow,
) -> list[int]:
    """Stream each row's next token (``tokens``, chosen by :func:`choose_tokens`); finish the rows
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


def choose_tokens(logits: Any, rows: Sequence[Row]) -> list[int]:
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


def row_generator(job: DecodeRow, device: Any) -> Any:
    if job.params.greedy:
        return None
    import secrets

    import torch

    seed = job.params.seed if job.params.seed is not None else secrets.randbits(63)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def row_result(
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


def with_wait(result: GenerationResult, queued_s: float) -> GenerationResult:
    from dataclasses import replace

    return replace(result, queued_s=queued_s)
