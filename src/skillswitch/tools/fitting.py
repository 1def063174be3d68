"""``skillswitch fit tools``: fine-tune the tool-retrieval encoder on labelled requests.

Zero-shot MiniLM ranks tools by how a request's words resemble a tool's description; requests
people really send ("find me a cheap flight and put it in my calendar") are phrased far from the
descriptions they need. Given requests labelled with the tools that served them (LiveMCPBench
annotations, BFCL gold calls), this fits the encoder contrastively: each request is pulled
toward the text of its tool (:func:`~skillswitch.tools.retrieval.dense_tool_text`, exactly what
:class:`~skillswitch.tools.retrieval.ToolIndex` embeds) and pushed from the other tools in the
batch and, where the data names them, from the candidates that were not chosen (BFCL's other
functions). The result is an ONNX encoder folder that ``tools.retrieval.encoder`` points at.

Measured in benchmarks/tool_retrieval.py (cross-validated over LiveMCPBench tasks: the encoder
of each fold never saw the fold's tasks).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.evals.tools import ToolEvalData
from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.outputs import check_replaceable
from skillswitch.router.encoders import BUNDLED_MODEL_NAME, OnnxEncoder, bundled_model_folder
from skillswitch.router.encoders.export import export_sentence_encoder, save_sentence_folder
from skillswitch.router.encoders.fingerprint import folder_fingerprint
from skillswitch.router.encoders.tuning import (
    linear_warmup,
    mean_pooled,
    trainable_encoder,
    training_torch,
)
from skillswitch.tools.retrieval import CatalogueEntry, RetrievalSettings, dense_tool_text

__all__ = [
    "MANIFEST_NAME",
    "ToolExample",
    "ToolFitResult",
    "ToolFitSettings",
    "check_tool_encoder",
    "examples_from",
    "fit_tool_encoder",
    "load_tool_encoder",
]

MANIFEST_NAME = "tool-encoder.json"
SCHEMA = "skillswitch.tool-encoder/1"
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


@dataclass(frozen=True, slots=True)
class ToolExample:
    """A request, a tool that serves it, and tools offered for it that do not."""

    request: str
    tool: CatalogueEntry
    negatives: tuple[CatalogueEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolFitSettings:
    """Hyper-parameters: common contrastive fine-tuning defaults for MiniLM (AdamW 2e-5, batch
    16, two epochs, cosine scale 20), set before any measurement and not tuned on the
    benchmark. ``hard_negatives``: unchosen candidates per example added to the batch."""

    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 2e-5
    scale: float = 20.0
    hard_negatives: int = 1
    max_length: int = 128
    warmup: float = 0.1
    max_steps: int | None = None
    seed: int = 0
    threads: int = 2
    encoder_reads_cjk: bool = RetrievalSettings().encoder_reads_cjk

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(
                "epochs and lr must be > 0 and batch_size >= 2 (in-batch negatives), got "
                f"epochs={self.epochs!r}, batch_size={self.batch_size!r}, lr={self.lr!r}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps!r}")


@dataclass(frozen=True, slots=True)
class ToolFitResult:
    folder: Path
    examples: int
    requests: int
    steps: int
    seconds: float


def examples_from(data: ToolEvalData) -> list[ToolExample]:
    """Training examples from labelled queries: one per (query, gold tool). A bare gold name
    that several catalogue servers share (LiveMCPBench) gives one example per such tool;
    BFCL's other candidates are the example's negatives; queries where no tool applies give
    none."""
    shared: dict[str, list[CatalogueEntry]] = {}
    for entry, name in zip(data.catalogue, data.names(data.catalogue), strict=True):
        shared.setdefault(name, []).append(entry)
    examples: list[ToolExample] = []
    for query in data.queries:
        offered = query.candidates
        for name in query.gold:
            if offered is not None:
                tools = [c for c in offered if c.name == name]
                negatives = tuple(c for c in offered if c.name not in query.gold)
            else:
                tools, negatives = shared.get(name, []), ()
            examples.extend(ToolExample(query.text, tool, negatives) for tool in tools)
    return examples


def fit_tool_encoder(
    examples: Sequence[ToolExample],
    out: Path,
    *,
    settings: ToolFitSettings = ToolFitSettings(),
    sources: Sequence[str] = (),
    progress: Progress | None = None,
) -> ToolFitResult:
    """Fine-tune MiniLM on ``examples`` and publish an ONNX encoder folder at ``out``
    (atomically: a failed fit leaves no folder behind and an older one untouched)."""
    started = time.perf_counter()
    requests = {example.request for example in examples}
    if len(examples) < 2 or len(requests) < 2:
        raise DatasetError(
            f"fitting a tool encoder needs at least two requests labelled with their tools; got "
            f"{len(examples)} example(s) from {len(requests)} request(s)"
        )
    check_replaceable(out, MANIFEST_NAME, "skillswitch fit tools")
    source = bundled_model_folder()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fit-tools-", dir=out.parent))
    try:
        steps = _finetune(list(examples), source, staging / "tuned", settings, progress)
        if progress is not None:
            progress("exporting to ONNX", 0, 1)
        encoder_folder = staging / "encoder"
        export_sentence_encoder(
            staging / "tuned",
            encoder_folder,
            name=f"{BUNDLED_MODEL_NAME}-tools",
            fingerprint=folder_fingerprint(staging / "tuned"),
        )
        if progress is not None:
            progress("exporting to ONNX", 1, 1)
        shutil.rmtree(staging / "tuned")
        seconds = round(time.perf_counter() - started, 1)
        manifest = {
            "schema": SCHEMA,
            "base_encoder": f"{BUNDLED_MODEL_NAME}@{folder_fingerprint(source)}",
            "examples": len(examples),
            "requests": len(requests),
            "sources": list(sources),
            "settings": asdict(settings),
            "steps": steps,
            "seconds": seconds,
        }
        (encoder_folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), "utf-8")
        if out.exists():
            shutil.rmtree(out)
        encoder_folder.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ToolFitResult(out, len(examples), len(requests), steps, seconds)


def load_tool_encoder(folder: Path, *, threads: int = 1) -> OnnxEncoder:
    """The encoder a ``skillswitch fit tools`` folder holds (float32 ONNX)."""
    return OnnxEncoder(check_tool_encoder(folder), threads=threads)


def check_tool_encoder(folder: Path) -> Path:
    """``folder`` if ``skillswitch fit tools`` wrote it, else an :class:`ArtifactError` that says
    how to make one (cheap: reads the manifest only)."""
    manifest = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ArtifactError(
            f"tools.retrieval.encoder: {folder} does not exist; write it with `skillswitch fit "
            f"tools --queries FILE --out {folder}`, or leave the setting out for the router's "
            "encoder"
        )
    try:
        schema = json.loads(manifest.read_text(encoding="utf-8")).get("schema")
    except FileNotFoundError:
        raise ArtifactError(
            f"tools.retrieval.encoder: {folder} is not a folder written by `skillswitch fit "
            f"tools` (no {MANIFEST_NAME}); fit one with `skillswitch fit tools --out {folder}`"
        ) from None
    except (OSError, ValueError, AttributeError) as exc:
        raise ArtifactError(f"{manifest} is unreadable ({exc}); fit the encoder again") from None
    if schema != SCHEMA:
        raise ArtifactError(
            f"{manifest} has schema {schema!r}, expected {SCHEMA!r}; fit the encoder again with "
            "`skillswitch fit tools`"
        )
    return folder


# --- training ------------------------------------------------------------------------------


def _finetune(
    examples: list[ToolExample],
    source: Path,
    destination: Path,
    settings: ToolFitSettings,
    progress: Progress | None,
) -> int:
    torch = training_torch("skillswitch fit tools")

    rng = np.random.default_rng(settings.seed)
    tokenizer, model = trainable_encoder(source, seed=settings.seed, threads=settings.threads)
    cjk = settings.encoder_reads_cjk
    requests = [" ".join(example.request.split()) for example in examples]
    tools = [dense_tool_text(example.tool, reads_cjk=cjk) for example in examples]
    negatives = [
        [dense_tool_text(entry, reads_cjk=cjk) for entry in example.negatives]
        for example in examples
    ]
    gold: dict[str, set[str]] = {}
    for request, tool in zip(requests, tools, strict=True):
        gold.setdefault(request, set()).add(tool)

    def embed(texts: list[str]) -> Any:
        return mean_pooled(tokenizer, model, texts, settings.max_length)

    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    per_epoch = math.ceil(len(examples) / settings.batch_size)
    total = max(1, math.ceil(per_epoch * settings.epochs))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    warm = max(1, int(settings.warmup * total))
    schedule = linear_warmup(optimiser, total, warm)
    model.train()
    step = 0
    while step < total:
        for batch in np.array_split(rng.permutation(len(examples)), per_epoch):
            if step >= total:
                break
            rows = [int(i) for i in batch]
            documents = [tools[i] for i in rows]
            for i in rows:
                pool = negatives[i]
                take = min(settings.hard_negatives, len(pool))
                documents.extend(pool[j] for j in rng.choice(len(pool), take, replace=False))
            logits = settings.scale * embed([requests[i] for i in rows]) @ embed(documents).T
            own = [gold[requests[i]] for i in rows]
            logits = logits.masked_fill(_false_negatives(own, documents, torch), -1e4)
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(rows)))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            if progress is not None and (step % 5 == 0 or step == total):
                progress("fine-tuning", step, total)
    model.eval()
    save_sentence_folder(model, tokenizer, source, destination, {"steps": step, "tools": True})
    return step


def _false_negatives(own: list[set[str]], documents: list[str], torch: Any) -> Any:
    """Batch cells that must not count as negatives: row ``r``'s request is served by the
    document's tool (another gold tool of a multi-tool task, or the row's own tool appearing
    twice in the batch). ``own[r]``: the texts of every tool labelled for row ``r``'s request;
    the diagonal is row ``r``'s positive."""
    mask = torch.zeros(len(own), len(documents), dtype=torch.bool)
    for r, tools in enumerate(own):
        for c, document in enumerate(documents):
            if c != r and document in tools:
                mask[r, c] = True
    return mask
