"""A batch decoded in a preallocated KV cache, each step replayed as a CUDA graph on CUDA.

The dynamic path (:mod:`skillswitch.inference.decode`) grows a ``DynamicCache`` and lets
transformers build the attention mask each step: every step launches each layer's kernels from
Python, and on an H200 a 1.5B model's step at batch 64 took 18.5 ms of CPU for about 4 ms of GPU
work. Here the shapes never change within a batch: transformers' ``StaticCache`` holds
``prompt + max_new_tokens`` positions for every row, the attention mask is a 4D additive mask
that skillswitch keeps and updates in place (transformers uses a 4D mask as given), and the
token ids and positions live in fixed buffers. So the decode step can be captured once per batch
(after one uncaptured step, which warms the kernels up) and replayed: one launch per step.

With ``compiled`` (``scheduler.compile_decode``), the step is ``torch.compile``'d first
(:mod:`skillswitch.inference.step_compiler`: its small kernels fused), then captured the same
way.

When a model's step cannot be captured (an operation in its forward that a CUDA graph cannot
hold, such as a copy to the host), the batch goes on with uncaptured steps, and so do the later
batches of that model's class, after one warning.

What this costs: no row joins a running batch; finished rows stay in it (they are fed a pad
token, or their own argmax when the batch runs ahead of the host, and their output is ignored)
until :meth:`StaticBatch.keep_rows` copies the live rows' cache into a smaller one (the decode
loop does so when at most half the rows are left with many steps to go; on CUDA the step is
then captured again); the cache is allocated in full at the start. The model must have full
attention in every layer (no sliding windows).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from skillswitch.inference.kv_cache import cache_argument
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.step_compiler import (
    Backend,
    compile_errors,
    compiled_step,
    error_summary,
    refuse_compile,
)

__all__ = ["StaticBatch", "capture_refused", "static_decodable"]

logger = logging.getLogger(__name__)

_uncapturable: dict[type, str] = {}
_lock = threading.Lock()


def capture_refused(model: Any) -> str | None:
    """Why ``model``'s class decodes without CUDA graphs (its capture failed), or None."""
    with _lock:
        return _uncapturable.get(type(model))


def _captures_graphs(device: Any) -> bool:
    """Whether steps on ``device`` are captured as CUDA graphs."""
    return bool(device.type == "cuda")


def _refuse_capture(model: Any, error: BaseException) -> None:
    reason = error_summary(error)
    with _lock:
        first = type(model) not in _uncapturable
        _uncapturable[type(model)] = reason
    if first:
        logger.warning(
            "static_decode: %s's decode step could not be captured as a CUDA graph (%s); "
            "its steps run uncaptured",
            type(model).__name__,
            reason,
        )


def static_decodable(loaded: LoadedModel) -> bool:
    """Whether ``loaded`` can decode in a static cache: every layer has full attention."""
    config = getattr(loaded.model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return all(kind == "full_attention" for kind in layer_types)
    if not getattr(config, "sliding_window", None):
        return True
    return getattr(config, "use_sliding_window", True) is False


class StaticBatch:
    """Left-padded prompts, prefilled into a static cache, then one token per row per step.

    On CUDA the decode step is replayed as a CUDA graph (unless its capture failed for the
    model's class: :func:`capture_refused`); elsewhere every step runs through the same buffers
    without one. ``compiled``: the step goes through ``torch.compile`` (falling
    back to eager steps, for good, when the model's class cannot be compiled); ``backend`` is
    the compiler. ``pad_id`` is what to feed a finished row.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        *,
        compiled: bool = False,
        backend: Backend = "inductor",
    ) -> None:
        import torch
        from transformers import StaticCache

        model = loaded.model
        self._model = model
        self._compiled = compiled_step(model, backend) if compiled else None
        self._compiled_calls = 0
        self.device = model.device
        self._dtype = model.dtype
        self.rows = len(prompts)
        self.width = max(len(p) for p in prompts)
        self.length = self.width + max(max_new_tokens, 1)
        self._graphs = _captures_graphs(self.device) and capture_refused(model) is None
        pad = loaded.tokenizer.pad_token_id
        self.pad_id: int = pad if pad is not None else 0
        ids = torch.full((self.rows, self.width), self.pad_id, dtype=torch.long)
        valid = torch.zeros((self.rows, self.length), dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            ids[i, self.width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            valid[i, self.width - len(prompt) : self.width] = True
        self._prompt_ids = ids.to(self.device)
        self._valid = valid.to(self.device)
        self._cache: Any = StaticCache(config=model.config, max_cache_len=self.length)
        positions = (self._valid[:, : self.width].long().cumsum(-1) - 1).clamp(min=0)
        self._prefill_positions = positions
        # The decode step's fixed buffers: the token fed, its position, the additive mask.
        self._ids = torch.zeros((self.rows, 1), dtype=torch.long, device=self.device)
        self._positions = positions[:, -1:] + 1
        self._mask = self._additive(self._valid)[:, None, None, :]
        self._column = self.width
        self._graph: Any = None
        self._graph_logits: Any = None
        self.replayed = False
        """Whether the last step was replayed from the captured graph."""
        self._lengths = [len(p) for p in prompts]
        self.prompt_tokens = sum(self._lengths)

    def next_positions(self) -> list[int]:
        """The position each row's next token takes (known on the host: no device sync)."""
        fed = self._column - self.width
        return [length + fed for length in self._lengths]

    def prefill(self) -> Any:
        """Run the prompts through the model; the logits of each row's next token."""
        import torch

        width = self.width
        causal = torch.ones((width, self.length), dtype=torch.bool, device=self.device).tril()
        allowed = causal[None] & self._valid[:, None, :]
        # A padding position attends to itself, so its (ignored) output is finite.
        allowed |= torch.eye(width, self.length, dtype=torch.bool, device=self.device)[None]
        out = self._model(
            input_ids=self._prompt_ids,
            attention_mask=self._additive(allowed)[:, None],
            position_ids=self._prefill_positions,
            use_cache=True,
            logits_to_keep=1,
            **cache_argument(self._model, self._cache),
        )
        return out.logits[:, -1, :]

    def step(self, tokens: Sequence[int]) -> Any:
        """Feed each row one token (any token for a finished row); the next logits."""
        import torch

        if len(tokens) != self.rows:
            raise ValueError(f"a step feeds {self.rows} rows, got {len(tokens)} tokens")
        return self.step_chosen(torch.tensor(list(tokens), dtype=torch.long))

    def step_chosen(self, tokens: Any) -> Any:
        """:meth:`step` fed a tensor of token ids, one per row (on the device: the host does not
        wait for them, so a step can be launched on the tokens of one still running)."""
        if tuple(tokens.shape) != (self.rows,):
            raise ValueError(f"a step feeds {self.rows} rows, got tokens of shape {tokens.shape}")
        if not self.room:
            raise RuntimeError(f"the static cache holds {self.length} positions; all are used")
        self._ids.copy_(tokens.view(-1, 1))
        self._mask[:, :, :, self._column] = 0.0
        self._column += 1
        self.replayed = self._graph is not None
        if self._graph is not None:
            self._graph.replay()
            logits = self._graph_logits
        elif self._graphs:
            logits = self._warm_up_and_capture()
        else:
            logits = self._forward()
        self._positions += 1
        return logits

    @property
    def room(self) -> bool:
        """Whether the cache has a position left for another step."""
        return self._column < self.length

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Go on with only ``rows`` (indices into the batch, in the order wanted): their cache,
        mask, positions and lengths move into buffers of that size; the next step is warmed up
        (compiled, captured) again."""
        import torch
        from transformers import StaticCache

        if not rows or len(set(rows)) != len(rows) or not all(0 <= r < self.rows for r in rows):
            raise ValueError(f"keep_rows takes distinct rows of 0..{self.rows - 1}, got {rows}")
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self._drop_graph()  # its memory pool holds the old buffers
        cache: Any = StaticCache(config=self._model.config, max_cache_len=self.length)
        with torch.no_grad():
            for new, old in zip(cache.layers, self._cache.layers, strict=True):
                # Allocated by transformers itself (sizes from these views), filled in place.
                head = (slice(0, len(rows)), slice(None), slice(0, 1))
                new.lazy_initialization(old.keys[head], old.values[head])
                torch.index_select(old.keys, 0, index, out=new.keys)
                torch.index_select(old.values, 0, index, out=new.values)
                new.cumulative_length.copy_(old.cumulative_length)
        self._cache = cache
        self._ids = self._ids.index_select(0, index)
        self._positions = self._positions.index_select(0, index)
        self._mask = self._mask.index_select(0, index)
        self._lengths = [self._lengths[r] for r in rows]
        self.rows = len(rows)
        self._compiled_calls = 0  # a new batch size: the next call may compile
        self.replayed = False

    def close(self) -> None:
        """Free the graph and the cache now rather than at garbage collection."""
        self._drop_graph()
        self._cache = None

    def _drop_graph(self) -> None:
        """Free the captured graph, once no replay of it is still running (a step may have been
        launched ahead of the host)."""
        import torch

        if self._graph is not None:
            torch.cuda.current_stream(self.device).synchronize()
        self._graph = self._graph_logits = None

    @property
    def compiled(self) -> bool:
        """Whether the decode step runs compiled (False once a compile has failed)."""
        return self._compiled is not None

    def _forward(self) -> Any:
        inputs = {
            "input_ids": self._ids,
            "attention_mask": self._mask,
            "position_ids": self._positions,
            "use_cache": True,
            **cache_argument(self._model, self._cache),
        }
        step = self._compiled
        if step is None:
            return self._model(**inputs).logits[:, -1, :]
        self._compiled_calls += 1
        if self._compiled_calls > 1:  # the batch's shapes are fixed: compiled at its first call
            return step(**inputs).logits[:, -1, :]
        try:
            return step.first(**inputs).logits[:, -1, :]
        except compile_errors() as error:
            # Raised while tracing or compiling, before the step ran: the cache is untouched.
            refuse_compile(self._model, step.backend, error)
            self._compiled = None
            return self._model(**inputs).logits[:, -1, :]

    def _warm_up_and_capture(self) -> Any:
        """The first decode step, run uncaptured on a side stream (CUDA graphs need their
        kernels warmed up before capture; a compiled step is compiled here, not while
        capturing), then the step captured for the rest of the batch."""
        import torch

        stream: Any = torch.cuda.Stream  # untyped in torch's stubs
        side = stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            logits = self._forward().clone()
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            # Captured, not run: the replays write the cache's next columns, as _forward did.
            # thread_local: CUDA work of other threads (an embedding model, say) is allowed.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._graph_logits = self._forward()
        except RuntimeError as error:  # torch.AcceleratorError is one
            # Nothing captured ran, so the cache is as the warm-up step left it.
            _refuse_capture(self._model, error)
            self._graphs = False
            self._graph_logits = None
            return logits
        self._graph = graph
        return logits

    def _additive(self, allowed: Any) -> Any:
        """0 where attention is allowed, the dtype's lowest value where it is not."""
        import torch

        low = torch.finfo(self._dtype).min
        zeros = torch.zeros(allowed.shape, dtype=self._dtype, device=self.device)
        return zeros.masked_fill(~allowed, low)
