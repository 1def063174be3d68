"""``skillswitch fit tools``: fine-tune the tool-retrieval encoder on labelled requests.

Zero-shot MiniLM ranks tools by how a request's words resemble a tool's description; requests
people really send ("find me a cheap flight and put it in my calendar") are phrased far from the
descriptions they need. Given requests labelled with the tools that served them (LiveMCPBench
annotations, BFCL gold calls), this fits the encoder contrastively: each request is pulled
toward the text of its tool (:func:`~skillswitch.tools.retrieval.dense_tool_text`, exactly what
:class:`~skillswitch.tools.retrieval.ToolIndex` embeds) and pushed from the other tools in the
batch and, where the data names them, from the candidates that were not chosen (BFCL's other
functions). The result is an ONNX encoder folder that ``tools.retrieval.encoder`` points at.

"No tool applies" is learnt too when the data has requests that no tool serves (BFCL
irrelevance files; ``"tools": []`` in a deployment's labelled requests). The contrastive logits
get a "no tool" column of fixed cosine ``null_similarity``: a request with a tool must score
its tool above it, a request without one must score all its candidates below it (its eight
most similar candidates under the base encoder). A share of the requests is held out to fit
the relevance threshold of the fitted encoder (the highest that costs at most
``max_top1_loss`` of its top-1 answers), which the folder's manifest carries and retrieval
uses. When enough held-out requests have no tool, the same held-out requests also fit the
argument-evidence correction of relevance (:mod:`skillswitch.tools.evidence`: a request that
names a tool's topic but none of its arguments), cross-fitted so the threshold is fitted on
corrections the requests did not shape.

Measured in benchmarks/tool_retrieval.py (cross-validated over LiveMCPBench tasks and BFCL
live_multiple / live_irrelevance queries: the encoder of each fold never saw the fold).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.evals.tools import ToolEvalData, fit_rejection_threshold, search_queries
from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.outputs import check_replaceable
from skillswitch.router.encoders import BUNDLED_MODEL_NAME, OnnxEncoder, bundled_model_folder
from skillswitch.router.encoders.export import export_sentence_encoder, save_sentence_folder
from skillswitch.router.encoders.fingerprint import folder_fingerprint
from skillswitch.router.encoders.tuning import (
    linear_warmup,
    mean_pooled,
    optimiser_step,
    trainable_encoder,
    training_torch,
)
from skillswitch.tools.evidence import (
    EvidenceModel,
    evidence_measures,
    fit_evidence_model,
    request_measures,
    required_parameters,
)
from skillswitch.tools.retrieval import (
    DEFAULT_THRESHOLD,
    CatalogueEntry,
    RetrievalSettings,
    dense_tool_text,
)

__all__ = [
    "MANIFEST_NAME",
    "MIN_VALIDATION",
    "ToolExample",
    "ToolFitResult",
    "ToolFitSettings",
    "ValidationScores",
    "check_tool_encoder",
    "examples_from",
    "fit_tool_encoder",
    "fitted_evidence",
    "fitted_settings",
    "fitted_threshold",
    "load_tool_encoder",
    "split_validation",
]

MANIFEST_NAME = "tool-encoder.json"
SCHEMA = "skillswitch.tool-encoder/1"
MIN_VALIDATION = 20
"""Held-out requests with a tool below which no threshold is fitted (the default stays), and
held-out requests without one below which no argument-evidence correction is fitted."""
EVIDENCE_FOLDS = 5
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


@dataclass(frozen=True, slots=True)
class ToolExample:
    """A request, a tool that serves it (``None``: no tool applies), and tools offered for it
    that do not serve it."""

    request: str
    tool: CatalogueEntry | None
    negatives: tuple[CatalogueEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolFitSettings:
    """Hyper-parameters: common contrastive fine-tuning defaults for MiniLM (AdamW 2e-5, batch
    16, two epochs, cosine scale 20), set before any measurement and not tuned on the
    benchmark. ``hard_negatives``: unchosen candidates per example added to the batch.

    "No tool applies" (used when the examples hold requests without a tool):
    ``null_similarity``: the cosine of the "no tool" column (0.4, chosen on one fold of BFCL
    live_multiple, see benchmarks/tool_retrieval.py); ``null_batch_size``: no-tool requests
    added to each batch; ``null_negatives``: their candidates in the batch (the most similar
    under the base encoder). ``validation``: share of the requests held out to fit the
    threshold (:func:`split_validation`); ``max_top1_loss``: the share of held-out requests
    whose right top-1 tool the threshold may reject; ``evidence``: also fit the
    argument-evidence correction there (:mod:`skillswitch.tools.evidence`)."""

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
    null_similarity: float = 0.4
    null_batch_size: int = 8
    null_negatives: int = 8
    validation: float = 0.2
    max_top1_loss: float = 0.02
    evidence: bool = True

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError(
                "epochs and lr must be > 0 and batch_size >= 2 (in-batch negatives), got "
                f"epochs={self.epochs!r}, batch_size={self.batch_size!r}, lr={self.lr!r}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps!r}")
        if not -1.0 < self.null_similarity < 1.0:
            raise ValueError(
                f"null_similarity must be a cosine in (-1, 1), got {self.null_similarity!r}"
            )
        if self.null_batch_size < 0 or self.null_negatives < 1:
            raise ValueError(
                f"null_batch_size must be >= 0 and null_negatives >= 1, got "
                f"{self.null_batch_size!r} and {self.null_negatives!r}"
            )
        if not 0.0 <= self.validation < 1.0:
            raise ValueError(f"validation must be a share in [0, 1), got {self.validation!r}")
        if not 0.0 <= self.max_top1_loss < 1.0:
            raise ValueError(f"max_top1_loss must be a share in [0, 1), got {self.max_top1_loss!r}")


@dataclass(frozen=True, slots=True)
class ValidationScores:
    """The fitted encoder on the held-out requests, with the threshold fitted there.

    ``requests``: held-out requests with a tool; ``top1``: the share ranked right first;
    ``top1_lost``: the share of them right first but rejected by the threshold;
    ``no_tool_requests`` and ``rejected``: held-out requests without a tool and the share
    rejected (``None`` when there are none). ``evidence``: whether relevance carries the
    argument-evidence correction (then the figures are cross-fitted: each request's correction
    comes from a model fitted without it); ``relevance_threshold`` and
    ``rejected_by_relevance``: a threshold on the uncorrected relevance, fitted the same way,
    and the share it rejects, for comparison (``None`` without the correction)."""

    threshold: float
    requests: int
    top1: float
    top1_lost: float
    no_tool_requests: int
    rejected: float | None
    evidence: bool = False
    relevance_threshold: float | None = None
    rejected_by_relevance: float | None = None


@dataclass(frozen=True, slots=True)
class ToolFitResult:
    """``threshold``: fitted on the held-out requests (``None``: too few of them, see
    :data:`MIN_VALIDATION`; retrieval keeps its default)."""

    folder: Path
    examples: int
    requests: int
    no_tool_requests: int
    steps: int
    seconds: float
    validation: ValidationScores | None

    @property
    def threshold(self) -> float | None:
        return self.validation.threshold if self.validation is not None else None


def split_validation(
    data: ToolEvalData, share: float, *, seed: int = 0
) -> tuple[ToolEvalData, ToolEvalData]:
    """(train, held out): ``share`` of the requests with a tool and of those without one, drawn
    at random (seeded), held out."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for has_tool in (True, False):
        group = [i for i, query in enumerate(data.queries) if bool(query.gold) == has_tool]
        take = round(share * len(group))
        held.update(int(group[j]) for j in rng.permutation(len(group))[:take])

    def part(keep: bool, label: str) -> ToolEvalData:
        queries = tuple(q for i, q in enumerate(data.queries) if (i in held) != keep)
        return replace(data, queries=queries, source=f"{data.source} ({label})")

    return part(True, "train"), part(False, "held out")


def examples_from(data: ToolEvalData) -> list[ToolExample]:
    """Training examples from labelled queries: one per (query, gold tool). A bare gold name
    that several catalogue servers share (LiveMCPBench) gives one example per such tool;
    BFCL's other candidates are the example's negatives. A query that no tool serves gives one
    example without a tool, its candidates (or the whole catalogue) as negatives."""
    shared: dict[str, list[CatalogueEntry]] = {}
    for entry, name in zip(data.catalogue, data.names(data.catalogue), strict=True):
        shared.setdefault(name, []).append(entry)
    examples: list[ToolExample] = []
    for query in data.queries:
        offered = query.candidates
        if not query.gold:
            unserved = offered if offered is not None else data.catalogue
            if unserved:
                examples.append(ToolExample(query.text, None, tuple(unserved)))
            continue
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
    validation: Sequence[ToolEvalData] = (),
    sources: Sequence[str] = (),
    progress: Progress | None = None,
) -> ToolFitResult:
    """Fine-tune MiniLM on ``examples`` and publish an ONNX encoder folder at ``out``
    (atomically: a failed fit leaves no folder behind and an older one untouched). With
    ``validation`` (requests the fit never sees, :func:`split_validation`), the "no tool
    applies" threshold of the fitted encoder is fitted on them."""
    started = time.perf_counter()
    served = [example for example in examples if example.tool is not None]
    requests = {example.request for example in served}
    unserved = {example.request for example in examples if example.tool is None}
    if len(served) < 2 or len(requests) < 2:
        raise DatasetError(
            f"fitting a tool encoder needs at least two requests labelled with their tools; got "
            f"{len(served)} example(s) from {len(requests)} request(s)"
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
        scores, evidence = _validate(encoder_folder, validation, settings, progress)
        seconds = round(time.perf_counter() - started, 1)
        manifest = {
            "schema": SCHEMA,
            "base_encoder": f"{BUNDLED_MODEL_NAME}@{folder_fingerprint(source)}",
            "examples": len(examples),
            "requests": len(requests),
            "no_tool_requests": len(unserved),
            "sources": list(sources),
            "settings": asdict(settings),
            "steps": steps,
            "seconds": seconds,
            "threshold": scores.threshold if scores is not None else None,
            "evidence": evidence.to_json() if evidence is not None else None,
            "validation": asdict(scores) if scores is not None else None,
        }
        (encoder_folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), "utf-8")
        if out.exists():
            shutil.rmtree(out)
        encoder_folder.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ToolFitResult(out, len(examples), len(requests), len(unserved), steps, seconds, scores)


def _validate(
    folder: Path,
    validation: Sequence[ToolEvalData],
    settings: ToolFitSettings,
    progress: Progress | None,
) -> tuple[ValidationScores | None, EvidenceModel | None]:
    """Rank the held-out requests with the fitted encoder (exactly as retrieval will), fit the
    argument-evidence correction there (with enough requests of both kinds) and the threshold;
    (``None``, ``None``) when fewer than :data:`MIN_VALIDATION` have a tool."""
    served = sum(1 for data in validation for query in data.queries if query.gold)
    if served < MIN_VALIDATION:
        return None, None
    if progress is not None:
        progress("fitting the threshold on held-out requests", 0, 1)
    encoder = OnnxEncoder(folder, threads=settings.threads)
    retrieval = RetrievalSettings(encoder_reads_cjk=settings.encoder_reads_cjk)
    held: list[_HeldOut] = []
    for data in validation:
        names = data.names
        for query, search in zip(
            data.queries, search_queries(data, encoder, settings=retrieval), strict=True
        ):
            words, values = request_measures(search.texts[0])
            held.append(
                _HeldOut(
                    relevance=np.array([hit.relevance for hit in search.hits]),
                    required=np.array(
                        [required_parameters(hit.entry.input_schema) for hit in search.hits],
                        dtype=np.float64,
                    ),
                    words=words,
                    values=values,
                    has_tool=bool(query.gold),
                    right=bool(search.hits) and names([search.hits[0].entry])[0] in query.gold,
                )
            )
    if not any(h.right for h in held):
        return None, None
    plain = np.array([h.relevance.max(initial=-1.0) for h in held])
    unserved = sum(1 for h in held if not h.has_tool)
    evidence = None
    corrected = plain
    if settings.evidence and unserved >= MIN_VALIDATION:
        evidence = _fit_evidence(held)
        if evidence is not None:
            corrected = _cross_fitted(held, settings.seed)
    scores = _scores(held, corrected, settings.max_top1_loss)
    if evidence is not None:
        uncorrected = _scores(held, plain, settings.max_top1_loss)
        scores = replace(
            scores,
            evidence=True,
            relevance_threshold=uncorrected.threshold,
            rejected_by_relevance=uncorrected.rejected,
        )
    if progress is not None:
        progress("fitting the threshold on held-out requests", 1, 1)
    return scores, evidence


@dataclass(frozen=True, slots=True)
class _HeldOut:
    """A held-out request's ranking: each tool's (uncorrected) relevance and required
    parameters, the request's measures, whether a tool serves it and whether it came first."""

    relevance: np.ndarray
    required: np.ndarray
    words: int
    values: int
    has_tool: bool
    right: bool


def _fit_evidence(held: Sequence[_HeldOut]) -> EvidenceModel | None:
    """The correction fitted on requests whose first tool is right (a tool applies) against
    requests without a tool, each scored by its most relevant tool."""
    kept = [h for h in held if (h.right or not h.has_tool) and h.relevance.size]
    if not kept:
        return None
    relevance, measures = [], []
    for h in kept:
        best = int(np.argmax(h.relevance))
        relevance.append(float(h.relevance[best]))
        measures.append(evidence_measures(h.words, h.values, h.required[best : best + 1])[0])
    return fit_evidence_model(relevance, measures, [h.right for h in kept])


def _cross_fitted(held: Sequence[_HeldOut], seed: int) -> np.ndarray:
    """Each request's corrected relevance (its best tool after correction) under a model fitted
    on the other folds' requests (stratified by kind)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(held), dtype=np.intp)
    for kind in (True, False):
        rows = [i for i, h in enumerate(held) if h.has_tool == kind]
        fold[[rows[j] for j in rng.permutation(len(rows))]] = np.arange(len(rows)) % EVIDENCE_FOLDS
    corrected = np.empty(len(held))
    for k in range(EVIDENCE_FOLDS):
        model = _fit_evidence([h for i, h in enumerate(held) if fold[i] != k])
        for i in np.flatnonzero(fold == k).tolist():
            h = held[i]
            if not h.relevance.size:
                corrected[i] = -1.0
                continue
            adjusted = (
                h.relevance
                if model is None
                else model.adjusted(h.relevance, h.words, h.values, h.required)
            )
            corrected[i] = float(np.max(adjusted))
    return corrected


def _scores(held: Sequence[_HeldOut], relevance: np.ndarray, max_loss: float) -> ValidationScores:
    with_tool = [i for i, h in enumerate(held) if h.has_tool]
    without = [i for i, h in enumerate(held) if not h.has_tool]
    correct = [held[i].right for i in with_tool]
    scores = [float(relevance[i]) for i in with_tool]
    threshold = fit_rejection_threshold(scores, correct, max_loss=max_loss)
    lost = [right and score < threshold for score, right in zip(scores, correct, strict=True)]
    return ValidationScores(
        threshold=round(threshold, 6),
        requests=len(with_tool),
        top1=float(np.mean(correct)),
        top1_lost=float(np.mean(lost)),
        no_tool_requests=len(without),
        rejected=float(np.mean([relevance[i] < threshold for i in without])) if without else None,
    )


def fitted_threshold(folder: Path) -> float | None:
    """The "no tool applies" threshold fitted with the encoder in ``folder`` (``None``: none was
    fitted, retrieval keeps its default)."""
    return _threshold_in(_manifest(folder))


def fitted_evidence(folder: Path) -> EvidenceModel | None:
    """The argument-evidence correction fitted with the encoder in ``folder`` (``None``: none
    was fitted; relevance stays uncorrected)."""
    return _evidence_in(_manifest(folder), folder)


def fitted_settings(folder: Path, *, threshold: float | None = None) -> RetrievalSettings:
    """How retrieval runs with the encoder in ``folder``: ``threshold`` when given (a config's
    or a command line's), else the one fitted with it, else the default; and its
    argument-evidence correction. Reads the manifest once."""
    manifest = _manifest(folder)
    if threshold is None:
        threshold = _threshold_in(manifest)
    return RetrievalSettings(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        evidence=_evidence_in(manifest, folder),
    )


def _threshold_in(manifest: dict[str, Any]) -> float | None:
    threshold = manifest.get("threshold")
    return float(threshold) if isinstance(threshold, (int, float)) else None


def _evidence_in(manifest: dict[str, Any], folder: Path) -> EvidenceModel | None:
    data = manifest.get("evidence")
    if data is None:
        return None
    try:
        return EvidenceModel.from_json(data, str(folder / MANIFEST_NAME))
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None


def load_tool_encoder(folder: Path, *, threads: int = 1) -> OnnxEncoder:
    """The encoder a ``skillswitch fit tools`` folder holds (float32 ONNX)."""
    return OnnxEncoder(check_tool_encoder(folder), threads=threads)


def check_tool_encoder(folder: Path) -> Path:
    """``folder`` if ``skillswitch fit tools`` wrote it, else an :class:`ArtifactError` that says
    how to make one (cheap: reads the manifest only)."""
    _manifest(folder)
    return folder


def _manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise ArtifactError(
            f"tools.retrieval.encoder: {folder} does not exist; write it with `skillswitch fit "
            f"tools --queries FILE --out {folder}`, or leave the setting out for the router's "
            "encoder"
        )
    manifest = folder / MANIFEST_NAME
    try:
        loaded = json.loads(manifest.read_text(encoding="utf-8"))
        schema = loaded.get("schema")
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
    return dict(loaded)


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
    served = [example for example in examples if example.tool is not None]
    unserved = [example for example in examples if example.tool is None and example.negatives]
    requests = [" ".join(example.request.split()) for example in served]
    tools = [dense_tool_text(example.tool, reads_cjk=cjk) for example in served if example.tool]
    negatives = [
        [dense_tool_text(entry, reads_cjk=cjk) for entry in example.negatives] for example in served
    ]
    gold: dict[str, set[str]] = {}
    for request, tool in zip(requests, tools, strict=True):
        gold.setdefault(request, set()).add(tool)

    def embed(texts: list[str]) -> Any:
        return mean_pooled(tokenizer, model, texts, settings.max_length)

    null_requests = [" ".join(example.request.split()) for example in unserved]
    null_candidates = _closest_candidates(null_requests, unserved, embed, settings, torch)
    null_batch = settings.null_batch_size if unserved else 0
    null_order: list[int] = []

    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    per_epoch = math.ceil(len(served) / settings.batch_size)
    total = max(1, math.ceil(per_epoch * settings.epochs))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    warm = max(1, int(settings.warmup * total))
    schedule = linear_warmup(optimiser, total, warm)
    model.train()
    step = 0
    while step < total:
        for batch in np.array_split(rng.permutation(len(served)), per_epoch):
            if step >= total:
                break
            rows = [int(i) for i in batch]
            documents = [tools[i] for i in rows]
            for i in rows:
                pool = negatives[i]
                take = min(settings.hard_negatives, len(pool))
                documents.extend(pool[j] for j in rng.choice(len(pool), take, replace=False))
            mask = _false_negatives([gold[requests[i]] for i in rows], documents, torch)
            texts = [requests[i] for i in rows]
            spans: list[tuple[int, int]] = []
            for _ in range(null_batch):
                if not null_order:
                    null_order = [int(i) for i in rng.permutation(len(unserved))]
                j = null_order.pop()
                texts.append(null_requests[j])
                spans.append((len(documents), len(documents) + len(null_candidates[j])))
                documents.extend(null_candidates[j])
            logits = embed(texts) @ embed(documents).T
            targets = torch.arange(len(rows))
            if spans:
                # The "no tool" column: rows with a tool must beat it, rows without one must
                # score their own candidates below it (never the batch's other tools, some of
                # which may well serve them).
                logits, mask, targets = _with_null_column(
                    logits, mask, spans, settings.null_similarity, len(rows), torch
                )
            logits = (settings.scale * logits).masked_fill(mask, -1e4)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            optimiser_step(model, optimiser, schedule, loss)
            step += 1
            if progress is not None and (step % 5 == 0 or step == total):
                progress("fine-tuning", step, total)
    model.eval()
    save_sentence_folder(model, tokenizer, source, destination, {"steps": step, "tools": True})
    return step


def _with_null_column(
    similarities: Any, mask: Any, spans: list[tuple[int, int]], null: float, served: int, torch: Any
) -> tuple[Any, Any, Any]:
    """Similarities (served rows, then no-tool rows; documents), the mask and the targets with
    the "no tool" column appended: no-tool row ``n`` sees only its candidates ``spans[n]`` and
    the column, which is its target."""
    rows, columns = similarities.shape
    column = torch.full((rows, 1), null, dtype=similarities.dtype)
    full = torch.zeros(rows, columns + 1, dtype=torch.bool)
    full[:served, : mask.shape[1]] = mask
    for n, (first, end) in enumerate(spans):
        full[served + n, :first] = True
        full[served + n, end:columns] = True
    targets = torch.cat(
        [torch.arange(served), torch.full((len(spans),), columns, dtype=torch.long)]
    )
    return torch.cat([similarities, column], dim=1), full, targets


def _closest_candidates(
    requests: list[str],
    unserved: list[ToolExample],
    embed: Callable[[list[str]], Any],
    settings: ToolFitSettings,
    torch: Any,
) -> list[list[str]]:
    """For each no-tool request, the texts of its ``null_negatives`` candidates most similar
    under the base encoder (all of them when there are no more): the tools it is most easily
    mistaken for."""
    cjk = settings.encoder_reads_cjk
    offered = [
        list(dict.fromkeys(dense_tool_text(entry, reads_cjk=cjk) for entry in example.negatives))
        for example in unserved
    ]
    keep = settings.null_negatives
    crowded = [i for i, texts in enumerate(offered) if len(texts) > keep]
    if not crowded:
        return offered
    documents = list(dict.fromkeys(text for i in crowded for text in offered[i]))
    position = {text: n for n, text in enumerate(documents)}
    chunk = 64
    with torch.no_grad():
        tools = torch.cat(
            [embed(documents[a : a + chunk]) for a in range(0, len(documents), chunk)]
        )
        asked = [requests[i] for i in crowded]
        queries = torch.cat([embed(asked[a : a + chunk]) for a in range(0, len(asked), chunk)])
    for row, i in enumerate(crowded):
        columns = torch.tensor([position[text] for text in offered[i]])
        similarity = tools[columns] @ queries[row]
        best = torch.topk(similarity, keep).indices.tolist()
        offered[i] = [offered[i][j] for j in best]
    return offered


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
