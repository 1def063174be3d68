"""Training of the tool verifier (:mod:`skillswitch.tools.verifier`) for ``fit tools``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skillswitch.router.encoders.export import save_sentence_folder
from skillswitch.router.encoders.tuning import (
    linear_warmup,
    mean_pooled,
    optimiser_step,
    step_budget,
    trainable_encoder,
    training_torch,
)
from skillswitch.tools.verifier import VerifierPair

__all__ = ["VerifierFit", "VerifierFitSettings", "train_verifier"]


@dataclass(frozen=True, slots=True)
class VerifierFitSettings:
    """Common cross-encoder fine-tuning defaults for MiniLM (AdamW 3e-5 for the encoder, 5e-3
    for the new head, batch 16, two epochs, binary cross-entropy), set before any measurement.
    ``max_length`` is the export's (the ONNX encoder truncates there too)."""

    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 3e-5
    head_lr: float = 5e-3
    max_length: int = 256
    warmup: float = 0.1
    max_steps: int | None = None
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True, slots=True)
class VerifierFit:
    """The fine-tuned encoder's folder (sentence-transformers, ready for ONNX export) and the
    head over its normalised embedding."""

    folder: Path
    weights: np.ndarray
    bias: float
    steps: int


def train_verifier(
    pairs: Sequence[VerifierPair],
    source: Path,
    destination: Path,
    settings: VerifierFitSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> VerifierFit:
    """Fine-tune the encoder in ``source`` with a linear head on ``pairs`` and save it at
    ``destination``."""
    if not any(p.serves for p in pairs) or all(p.serves for p in pairs):
        raise ValueError("the verifier needs pairs where the tool serves and pairs where not")
    torch = training_torch("skillswitch fit tools --verifier")
    rng = np.random.default_rng(settings.seed)
    tokenizer, model = trainable_encoder(source, seed=settings.seed, threads=settings.threads)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimiser = torch.optim.AdamW(
        [
            {"params": model.parameters(), "lr": settings.lr},
            {"params": head.parameters(), "lr": settings.head_lr},
        ]
    )
    per_epoch, total = step_budget(
        len(pairs), settings.batch_size, settings.epochs, settings.max_steps
    )
    schedule = linear_warmup(optimiser, total, max(1, int(settings.warmup * total)))
    model.train()
    step = 0
    while step < total:
        for batch in np.array_split(rng.permutation(len(pairs)), per_epoch):
            if step >= total:
                break
            rows = [pairs[int(i)] for i in batch]
            embedded = mean_pooled(tokenizer, model, [p.text for p in rows], settings.max_length)
            logits = head(embedded).squeeze(-1)
            labels = torch.tensor([float(p.serves) for p in rows])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimiser_step(model, optimiser, schedule, loss)
            step += 1
            if progress is not None and (step % 5 == 0 or step == total):
                progress("fine-tuning the verifier", step, total)
    model.eval()
    save_sentence_folder(
        model, tokenizer, source, destination, {"steps": step, "tool_verifier": True}
    )
    weights = head.weight.detach().numpy().reshape(-1).astype(np.float32)
    return VerifierFit(destination, weights, float(head.bias.detach().item()), step)
