"""Pieces shared by the encoder fine-tunes (``fit intents --method finetune``, ``fit tools``):
a trainable MiniLM, its mean-pooled embedding (the exported ONNX graph's pooling), the linear
warm-up / decay schedule, and one optimiser step. Needs torch and transformers (the ``train``
extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skillswitch.exceptions import MissingDependencyError

__all__ = ["linear_warmup", "mean_pooled", "optimiser_step", "trainable_encoder", "training_torch"]


def training_torch(feature: str) -> Any:
    """The ``torch`` module, after checking that the ``train`` extra (torch, transformers) is
    installed; otherwise a :class:`MissingDependencyError` naming ``feature`` and the install."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(feature, "train", exc.name or "torch") from None
    return torch


def trainable_encoder(source: Path, *, seed: int, threads: int) -> tuple[Any, Any]:
    """(tokenizer, model) of the sentence-transformers folder ``source``, seeded, on
    ``threads`` CPU threads."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    return tokenizer, model


def mean_pooled(tokenizer: Any, model: Any, texts: Sequence[str], max_length: int) -> Any:
    """Unit-length mean-pooled embeddings of ``texts`` (a tensor that carries gradients)."""
    import torch

    encoded = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def linear_warmup(optimiser: Any, total: int, warm: int) -> Any:
    """Learning rate rising linearly over ``warm`` steps, then falling linearly to 0 at
    ``total``."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)),
    )


def optimiser_step(model: Any, optimiser: Any, schedule: Any, loss: Any) -> None:
    """Back-propagate ``loss``, clip the gradient norm to 1, step the optimiser and the
    learning-rate schedule."""
    import torch

    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    schedule.step()
