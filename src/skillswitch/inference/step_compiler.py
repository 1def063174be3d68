"""The static decode step compiled with ``torch.compile`` (``scheduler.compile_decode``).

Run eagerly, a decode step launches each layer's small kernels one at a time: the norms, the
rotary embedding, the activation, the residual adds, each a read and a write of the hidden
states. Inductor fuses them (and on the CPU, runs the step as one generated function instead of
module by module from Python). On CUDA the compiled step is then captured as a CUDA graph like
the eager one (:class:`~skillswitch.inference.static_decode.StaticBatch`).

What it costs: the first batch of each model class waits for the compile (tens of seconds on a
CPU for the tiny test models; more for a real model). It is compiled with dynamic shapes, but
the static cache's batch size is fixed, so dynamo compiles for the first batch size it sees,
again with the batch size dynamic when a second size comes, and once more for a batch of one row
(dynamo specialises sizes of 1): three compiles per class, after which batches of any size and
length reuse the code (``LocalBackend.preload`` does all three before any request). Models of
the same class and weight shapes share the compiled code: their weights are inputs of the
compiled graph, not constants in it.

When a model cannot be compiled (dynamo cannot trace it as one graph, inductor finds no C++
compiler on the CPU, ...), its class decodes eagerly from then on (with that compiler), after one
warning.
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = [
    "Backend",
    "CompiledStep",
    "compile_refused",
    "compiled_step",
    "compiled_variants",
    "error_summary",
    "refuse_compile",
]

logger = logging.getLogger(__name__)

Backend = str | Callable[..., Any]
"""A ``torch.compile`` backend: a name (inductor) or a compiler function."""

RECOMPILE_LIMIT = 64
"""Compiles kept per model class (dynamo's default is 8 per function). Each class is compiled
for batches of several rows and of one, and again whenever transformers registers a model class
it had not seen (its forward reads a registry of classes, which dynamo guards)."""

_refused: dict[tuple[type, Backend], str] = {}
_steps: dict[type, Callable[..., Any]] = {}
_lock = threading.Lock()


class CompiledStep:
    """``model``'s forward through ``torch.compile``. Call :meth:`first` for a batch's first
    step (the one that may compile), then the object itself.

    Raises what the compile raised (``TorchDynamoException``, ``FailOnRecompileLimitHit``)
    before anything ran; see :func:`compile_errors`.
    """

    def __init__(self, model: Any, backend: Backend) -> None:
        import torch

        self.model = model
        self.backend = backend
        self._compiled = torch.compile(
            _step_function(type(model)), backend=backend, dynamic=True, fullgraph=True
        )

    def first(self, **inputs: Any) -> Any:
        import torch._dynamo

        # Past the limit dynamo would run the step eagerly without a word: fail instead.
        with torch._dynamo.config.patch(
            recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True
        ):
            return self._compiled(self.model, inputs)

    def __call__(self, **inputs: Any) -> Any:
        return self._compiled(self.model, inputs)


def compile_errors() -> tuple[type[BaseException], ...]:
    """What a compile raises before the step ran (the KV cache untouched)."""
    from torch._dynamo.exc import FailOnRecompileLimitHit, TorchDynamoException

    return (TorchDynamoException, FailOnRecompileLimitHit)


def compiled_step(model: Any, backend: Backend = "inductor") -> CompiledStep | None:
    """``model``'s decode step through ``torch.compile``, or None when its class was refused by
    ``backend`` (:func:`refuse_compile`). Nothing is compiled until the first call.
    """
    if compile_refused(model, backend) is not None:
        return None
    return CompiledStep(model, backend)


def compiled_variants(model: Any) -> int:
    """How many compiled versions of ``model``'s class's step dynamo keeps (one per batch shape
    it had to compile for). When it grows after warm-up, a request waited for a compile."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    return len(_debug_get_cache_entry_list(_step_function(type(model)).__code__))


def compile_refused(model: Any, backend: Backend = "inductor") -> str | None:
    """Why ``model``'s class decodes eagerly although compiling was asked for, or None."""
    with _lock:
        return _refused.get((type(model), backend))


def refuse_compile(model: Any, backend: Backend, error: BaseException) -> None:
    """Record that ``backend`` could not compile ``model``'s class: its later batches decode
    eagerly."""
    reason = error_summary(error)
    key = (type(model), backend)
    with _lock:
        first = key not in _refused
        _refused[key] = reason
    if first:
        logger.warning(
            "compile_decode: %s could not be compiled (%s); its decode steps run eagerly",
            type(model).__name__,
            reason,
        )


def _step(model: Any, inputs: dict[str, Any]) -> Any:
    return model(**inputs)


def _step_function(cls: type) -> Callable[..., Any]:
    """:func:`_step` under a code object of ``cls``'s own. Dynamo keeps compiled code per code
    object, and transformers wraps every model's forward in the same decorator function, so
    without this all model classes would share one function's compiles and its limit."""
    with _lock:
        step = _steps.get(cls)
        if step is None:
            code = _step.__code__.replace(co_name=f"decode_step_{cls.__name__}")
            step = types.FunctionType(code, _step.__globals__, code.co_name)
            _steps[cls] = step
        return step


def error_summary(error: BaseException) -> str:
    """The error's type and the first line of its message (a wrapped compiler error's own)."""
    # A compiler's own failure arrives wrapped (BackendCompilerFailed): name the compiler's.
    error = getattr(error, "inner_exception", None) or error
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
