"""``skillswitch fit intents``: train an intent classifier with out-of-scope rejection.

Two methods, one artifact format (see ``trained.py``):

- ``finetune``: fine-tune the MiniLM encoder jointly with a cosine-softmax head (cross-entropy
  over the skills plus an out-of-scope class when the data has one), then export the tuned
  encoder to ONNX. Best accuracy; minutes on a CPU.
- ``linear``: keep the encoder frozen and train only the head. Seconds.

The out-of-scope threshold is then chosen on validation data only, through the exact inference
path (ONNX encoder + numpy head) the router will use.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skillswitch.config.models import ThresholdObjective
from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.outputs import check_replaceable
from skillswitch.router.calibration import NO_VALIDATION, Calibration, calibrate_scores
from skillswitch.router.encoders import (
    BUNDLED_MODEL_NAME,
    EmbeddingCache,
    bundled_model_folder,
    prepare_onnx_encoder,
)
from skillswitch.router.encoders.export import export_sentence_encoder, save_sentence_folder
from skillswitch.router.encoders.fingerprint import folder_fingerprint
from skillswitch.router.encoders.onnx import OnnxEncoder
from skillswitch.router.encoders.tuning import (
    linear_warmup,
    mean_pooled,
    optimiser_step,
    trainable_encoder,
    training_torch,
)
from skillswitch.router.trained import (
    ENCODER,
    MANIFEST,
    Feature,
    LinearHead,
    ScoreTerm,
    TrainedArtifact,
    write_artifact,
)

__all__ = ["FitResult", "FitSettings", "Method", "fit_intents", "holdout_split"]

Method = Literal["finetune", "linear"]
# Chosen on CLINC150 validation data (README, Performance): energy alone misses out-of-scope
# requests that sit near a skill's decision boundary; distance to the training set and to the
# known out-of-scope examples catch many of them.
DEFAULT_SCORE: tuple[tuple[Feature, float], ...] = (
    ("energy", 1.0),
    ("nearest", 1.0),
    ("oos_nearest", 0.5),
)
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FitSettings:
    """Hyper-parameters; defaults chosen on CLINC150's validation split (README, Performance)."""

    method: Method = "finetune"
    epochs: float = 3.0
    batch_size: int = 32
    encoder_lr: float = 1e-4
    head_lr: float = 1e-2
    scale: float = 20.0
    max_length: int = 64
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_steps: int | None = None
    seed: int = 0
    threads: int = 2
    objective: ThresholdObjective = "min"
    out_of_scope_score: tuple[tuple[Feature, float], ...] = DEFAULT_SCORE
    """Weighted, standardised features whose sum is thresholded; empty: the reject class."""


@dataclass(frozen=True, slots=True)
class FitResult:
    folder: Path
    labels: tuple[str, ...]
    calibration: Calibration
    seconds: float
    steps: int


def holdout_split(
    texts: Sequence[str], labels: Sequence[str], *, share: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Stratified (train, validation) indices: ``share`` of every label held out (at least one
    item of a label with two or more)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    train: list[int] = []
    val: list[int] = []
    for indices in by_label.values():
        shuffled = list(rng.permutation(indices))
        held = max(1, round(len(shuffled) * share)) if len(shuffled) >= 2 else 0
        val.extend(int(i) for i in shuffled[:held])
        train.extend(int(i) for i in shuffled[held:])
    return sorted(train), sorted(val)


def fit_intents(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    val_texts: Sequence[str],
    val_labels: Sequence[str],
    out: Path,
    *,
    oos_label: str,
    settings: FitSettings = FitSettings(),
    cache_root: Path,
    progress: Progress | None = None,
) -> FitResult:
    """Train on (train_texts, train_labels), calibrate on the validation items, write ``out``."""
    started = time.perf_counter()
    check_replaceable(out, MANIFEST, "skillswitch fit intents")
    labels = _label_order(train_labels, oos_label)
    if len([label for label in labels if label != oos_label]) < 2:
        raise DatasetError("training data needs at least two in-scope labels")
    if not val_labels:
        raise DatasetError(NO_VALIDATION)  # before the training, not after it
    index = {label: i for i, label in enumerate(labels)}
    targets = np.array([index[label] for label in train_labels], dtype=np.int64)
    source = bundled_model_folder()
    fingerprint = folder_fingerprint(source, cache_root / "fingerprints.json")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".fit-", dir=_parent(out)))
    except OSError as exc:
        raise ArtifactError(
            f"cannot write the classifier to {out}: {exc.strerror or exc}; give --out a folder "
            "that can be created"
        ) from None
    try:
        if settings.method == "finetune":
            train_vectors = None  # the tuned encoder embeds them again below
            weights, bias, steps = _finetune(
                source, list(train_texts), targets, len(labels), staging, settings, progress
            )
            export_sentence_encoder(
                staging / "tuned",
                staging / ENCODER,
                name=f"{BUNDLED_MODEL_NAME}-tuned",
                fingerprint=folder_fingerprint(staging / "tuned"),
            )
            shutil.rmtree(staging / "tuned")
        else:
            exported = prepare_onnx_encoder(
                source, cache_root, name=BUNDLED_MODEL_NAME, fingerprint=fingerprint
            )
            shutil.copytree(exported, staging / ENCODER)
            cache = EmbeddingCache(cache_root / "embeddings.sqlite")
            try:
                if progress is not None:
                    progress("embedding", 0, len(train_texts))
                train_vectors = cache.encode(OnnxEncoder(staging / ENCODER), list(train_texts))
            finally:
                cache.close()
            weights, bias, steps = _train_head(
                train_vectors, targets, len(labels), settings, progress
            )
        encoder = OnnxEncoder(staging / ENCODER, threads=settings.threads)
        head, calibration = _score_and_calibrate(
            encoder,
            labels,
            weights,
            bias,
            train_texts,
            train_labels,
            val_texts,
            val_labels,
            oos_label=oos_label,
            settings=settings,
            progress=progress,
            train_vectors=train_vectors,
        )
        artifact = TrainedArtifact(
            labels=labels,
            out_of_scope_label=oos_label if oos_label in labels else None,
            weights=weights,
            bias=bias,
            scale=settings.scale,
            cosine=True,
            threshold=calibration.threshold,
            calibration=calibration,
            method=settings.method,
            terms=head.terms,
            bank=head.bank,
            oos_bank=head.oos_bank,
            provenance={
                "base_encoder": f"{BUNDLED_MODEL_NAME}@{fingerprint}",
                "train_items": len(train_texts),
                "val_items": len(val_texts),
                "settings": {k: getattr(settings, k) for k in settings.__slots__},
                "steps": steps,
                "seconds": round(time.perf_counter() - started, 1),
            },
        )
        write_artifact(staging, artifact)
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return FitResult(out, labels, calibration, time.perf_counter() - started, steps)


def _label_order(labels: Sequence[str], oos_label: str) -> tuple[str, ...]:
    inside = sorted({label for label in labels if label != oos_label})
    return (*inside, oos_label) if oos_label in set(labels) else tuple(inside)


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _score_and_calibrate(
    encoder: OnnxEncoder,
    labels: tuple[str, ...],
    weights: np.ndarray[Any, Any],
    bias: np.ndarray[Any, Any],
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    val_texts: Sequence[str],
    val_labels: Sequence[str],
    *,
    oos_label: str,
    settings: FitSettings,
    progress: Progress | None,
    train_vectors: np.ndarray[Any, Any] | None = None,
) -> tuple[LinearHead, Calibration]:
    """Fit the out-of-scope score's standardisation and the threshold on validation data,
    through the same ONNX encoder and numpy head the router will run."""
    has_oos = oos_label in set(train_labels)
    wanted = [
        (feature, weight)
        for feature, weight in settings.out_of_scope_score
        if feature != "oos_nearest" or has_oos
    ]
    bank = oos_bank = None
    needed = {feature for feature, _ in wanted} & {"nearest", "oos_nearest"}
    if needed:
        vectors = (
            train_vectors
            if train_vectors is not None
            else _encode(encoder, list(train_texts), "embedding training items", progress)
        )
        outside = np.array([label == oos_label for label in train_labels])
        bank = vectors[~outside] if "nearest" in needed else None
        oos_bank = vectors[outside] if "oos_nearest" in needed else None
    plain = LinearHead(
        labels,
        weights,
        bias,
        scale=settings.scale,
        cosine=True,
        out_of_scope_label=oos_label,
        bank=bank,
        oos_bank=oos_bank,
    )
    val_vectors = _encode(encoder, list(val_texts), "embedding validation items", progress)
    in_scope = np.array([label != oos_label for label in val_labels])
    values = plain.features(val_vectors)
    terms = []
    for feature, weight in wanted:
        reference = values[feature][in_scope] if in_scope.any() else values[feature]
        spread = float(reference.std()) or 1.0
        terms.append(ScoreTerm(feature, weight, float(reference.mean()), spread))
    head = plain.with_terms(terms)
    calibration = calibrate_scores(
        head.scores(val_vectors),
        head.skills,
        val_labels,
        out_of_scope_label=oos_label,
        objective=settings.objective,
        keep_without_negatives=1.0,  # no out-of-scope data: reject nothing rather than guess
    )
    return head, calibration


def _encode(
    encoder: OnnxEncoder, texts: list[str], stage: str, progress: Progress | None
) -> np.ndarray[Any, Any]:
    chunk = 1024
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(encoder.encode(texts[start : start + chunk]))
        if progress is not None:
            progress(stage, min(start + chunk, len(texts)), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dimension), np.float32)


def _torch() -> Any:
    return training_torch("skillswitch fit intents")


def _train_head(
    features: np.ndarray[Any, Any],
    targets: np.ndarray[Any, Any],
    classes: int,
    settings: FitSettings,
    progress: Progress | None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    """Cosine-softmax head on frozen embeddings (full-batch Adam; a convex-like problem)."""
    torch = _torch()
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(targets)
    weights = torch.nn.Parameter(_prototypes(x, y, classes, torch))
    bias = torch.nn.Parameter(torch.zeros(classes))
    optimiser = torch.optim.Adam([weights, bias], lr=settings.head_lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = settings.max_steps or 400
    for step in range(steps):
        logits = settings.scale * x @ torch.nn.functional.normalize(weights, dim=-1).T + bias
        loss = loss_fn(logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None and (step % 20 == 0 or step == steps - 1):
            progress("training head", step + 1, steps)
    return weights.detach().numpy(), bias.detach().numpy(), steps


def _prototypes(x: Any, y: Any, classes: int, torch: Any) -> Any:
    """Class means of normalised embeddings: the head's starting point (fast convergence)."""
    sums = torch.zeros(classes, x.shape[1]).index_add_(0, y, x)
    counts = torch.bincount(y, minlength=classes).clamp(min=1).unsqueeze(1)
    return torch.nn.functional.normalize(sums / counts, dim=-1)


def _finetune(
    source: Path,
    texts: list[str],
    targets: np.ndarray[Any, Any],
    classes: int,
    staging: Path,
    settings: FitSettings,
    progress: Progress | None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    torch = _torch()
    rng = np.random.default_rng(settings.seed)
    tokenizer, model = trainable_encoder(source, seed=settings.seed, threads=settings.threads)

    def embed(batch: list[str]) -> Any:
        return mean_pooled(tokenizer, model, batch, settings.max_length)

    model.eval()
    with torch.no_grad():
        initial = torch.cat([embed(texts[i : i + 128]) for i in range(0, len(texts), 128)])
    y_all = torch.from_numpy(targets)
    weights = torch.nn.Parameter(_prototypes(initial, y_all, classes, torch))
    # The word-embedding table is half the encoder's parameters; freezing it halves the
    # optimiser's work on a CPU and did not cost accuracy on CLINC150 validation data.
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    optimiser = torch.optim.AdamW(
        [
            {
                "params": [p for p in model.parameters() if p.requires_grad],
                "lr": settings.encoder_lr,
                "weight_decay": settings.weight_decay,
            },
            {"params": [weights], "lr": settings.head_lr, "weight_decay": 0.0},
        ]
    )
    per_epoch = math.ceil(len(texts) / settings.batch_size)
    total = max(1, int(per_epoch * settings.epochs))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    warm = max(1, int(settings.warmup * total))
    schedule = linear_warmup(optimiser, total, warm)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    step = 0
    lengths = np.array([len(text) for text in texts])
    while step < total:
        for batch in _length_bucketed_batches(lengths, settings.batch_size, rng):
            if step >= total:
                break
            pooled = embed([texts[i] for i in batch])
            logits = settings.scale * pooled @ torch.nn.functional.normalize(weights, dim=-1).T
            loss = loss_fn(logits, y_all[batch])
            optimiser_step(model, optimiser, schedule, loss)
            step += 1
            if progress is not None and (step % 10 == 0 or step == total):
                progress("fine-tuning", step, total)
    model.eval()
    save_sentence_folder(
        model, tokenizer, source, staging / "tuned", {"steps": step, "classes": classes}
    )
    return weights.detach().numpy(), np.zeros(classes, dtype=np.float32), step


def _length_bucketed_batches(
    lengths: np.ndarray[Any, Any], size: int, rng: np.random.Generator
) -> list[np.ndarray[Any, Any]]:
    """One epoch of batches: shuffle, sort each window of 50 batches by length (little
    padding), then shuffle the batches."""
    order = rng.permutation(lengths.shape[0])
    window = 50 * size
    batches = []
    for start in range(0, order.shape[0], window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + size] for i in range(0, chunk.shape[0], size)]
    return [batches[i] for i in rng.permutation(len(batches))]
