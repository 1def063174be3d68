"""A cross-encoder verifier of "this tool serves this request", for "no tool applies".

Retrieval's relevance compares a request and a tool embedded apart; many requests that no tool
serves still sit close to a tool's topic ("I need help making a payment"). The verifier reads
the request and the most relevant tool's text (with its required parameters) together: MiniLM
fine-tuned on the pair text ``request [SEP] tool`` with a linear head on its normalised
mean-pooled embedding, trained on the labelled requests of ``skillswitch fit tools`` (a request
with its tool: 1; with another of its candidates: 0; a request without a tool with two of its
candidates: 0). It is exported with the same ONNX path as any encoder, so it runs without
torch; only the best tool of each search is verified (one encoder pass per search).

Its logit enters the decision through :class:`VerifierGate`: a logistic model of "a tool
applies" on the best tool's relevance (argument-evidence corrected) and the logit, fitted on
the held-out requests and written in relevance units like the evidence correction, so the
threshold keeps its scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skillswitch.router.encoders.base import Encoder
from skillswitch.tools.evidence import fit_in_relevance_units
from skillswitch.tools.retrieval import CatalogueEntry, dense_tool_text

__all__ = [
    "VERIFIER_FOLDER",
    "ToolVerifier",
    "VerifierGate",
    "VerifierHead",
    "VerifierPair",
    "fit_gate",
    "load_head",
    "load_verifier",
    "pair_text",
    "verifier_pairs",
    "verifier_tool_text",
]

FloatArray = npt.NDArray[np.float64]
VERIFIER_FOLDER = "verifier"
"""Where the verifier's ONNX export lives inside a ``skillswitch fit tools`` folder."""
_DESCRIBED_CHARS = 80  # of each required parameter's "name: description"


def verifier_tool_text(entry: CatalogueEntry, *, reads_cjk: bool = False) -> str:
    """The tool as the verifier reads it: its retrieval text, then its required parameters
    (name and description) and the names of its optional ones."""
    schema = entry.input_schema if isinstance(entry.input_schema, Mapping) else {}
    listed = schema.get("required")
    required = {str(name) for name in listed} if isinstance(listed, list) else set()
    parameters = entry.parameters()
    needs = "; ".join(
        (f"{name}: {' '.join(about.split())}" if about.strip() else name)[:_DESCRIBED_CHARS]
        for name, about in parameters
        if name in required
    )
    optional = ", ".join(name for name, _ in parameters if name not in required)
    return (
        f"{dense_tool_text(entry, reads_cjk=reads_cjk)} Required: {needs or 'none'}. "
        f"Optional: {optional or 'none'}."
    )


def pair_text(request: str, entry: CatalogueEntry, *, reads_cjk: bool = False) -> str:
    """The verifier's input: the request and the tool in one text (the tokenizer reads
    ``[SEP]`` as its separator token)."""
    return f"{' '.join(request.split())} [SEP] {verifier_tool_text(entry, reads_cjk=reads_cjk)}"


@dataclass(frozen=True, slots=True)
class VerifierPair:
    text: str
    serves: bool


def verifier_pairs(
    requests: Sequence[tuple[str, CatalogueEntry | None, Sequence[CatalogueEntry]]],
    *,
    seed: int = 0,
    reads_cjk: bool = False,
) -> list[VerifierPair]:
    """Training pairs from (request, its tool or ``None``, tools offered that do not serve it):
    the request with its tool (serves) and with one of the others (does not); a request
    without a tool with two of the others (does not)."""
    rng = np.random.default_rng(seed)
    pairs: list[VerifierPair] = []
    for request, tool, others in requests:
        if tool is not None:
            pairs.append(VerifierPair(pair_text(request, tool, reads_cjk=reads_cjk), True))
        take = 1 if tool is not None else 2
        for j in rng.permutation(len(others))[:take]:
            pairs.append(
                VerifierPair(pair_text(request, others[int(j)], reads_cjk=reads_cjk), False)
            )
    return pairs


@dataclass(frozen=True, slots=True, eq=False)
class VerifierHead:
    """The exported verifier: ``encoder`` (its ONNX folder) and the linear head."""

    encoder: Encoder
    weights: npt.NDArray[np.float32]
    bias: float
    reads_cjk: bool = False

    def logits(self, request: str, entries: Sequence[CatalogueEntry]) -> FloatArray:
        """The log-odds that each of ``entries`` serves ``request``."""
        if not entries:
            return np.zeros(0)
        texts = [pair_text(request, e, reads_cjk=self.reads_cjk) for e in entries]
        vectors = np.asarray(self.encoder.encode(texts), dtype=np.float64)
        return np.asarray(vectors @ self.weights.astype(np.float64) + self.bias)

    def to_json(self) -> dict[str, Any]:
        return {"weights": [float(w) for w in self.weights], "bias": self.bias}


@dataclass(frozen=True, slots=True, eq=False)
class ToolVerifier:
    """The verifier and the gate fitted with it on held-out requests."""

    head: VerifierHead
    gate: VerifierGate

    def logits(self, request: str, entries: Sequence[CatalogueEntry]) -> FloatArray:
        return self.head.logits(request, entries)


@dataclass(frozen=True, slots=True)
class VerifierGate:
    """The best tool's relevance corrected by the verifier's logit, in relevance units:
    ``relevance_weight * relevance + weight * (logit - mean) / scale + offset`` is the relevance
    at which relevance alone gives the same odds that a tool applies."""

    mean: float
    scale: float
    weight: float
    relevance_weight: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        numbers = (self.mean, self.scale, self.weight, self.relevance_weight, self.offset)
        if not all(math.isfinite(x) for x in numbers) or self.scale <= 0:
            raise ValueError(f"a verifier gate needs finite numbers and a scale > 0: {self!r}")
        if self.relevance_weight < 0:
            raise ValueError(f"relevance_weight must be >= 0, got {self.relevance_weight!r}")

    def adjust(self, relevance: float, logit: float) -> float:
        standard = (logit - self.mean) / self.scale
        return float(self.relevance_weight * relevance + self.weight * standard + self.offset)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "scale": self.scale,
            "weight": self.weight,
            "relevance_weight": self.relevance_weight,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> VerifierGate:
        """The gate :meth:`to_json` wrote; a :class:`ValueError` naming ``where`` otherwise."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: the verifier's 'gate' is not an object; fit again")
        try:
            return cls(
                float(data["mean"]),
                float(data["scale"]),
                float(data["weight"]),
                float(data["relevance_weight"]),
                float(data["offset"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: the verifier's 'gate' is malformed ({exc}); fit again"
            ) from None


def fit_gate(
    relevance: Sequence[float] | FloatArray,
    logits: Sequence[float] | FloatArray,
    applies: Sequence[bool],
    *,
    l2: float = 1.0,
) -> VerifierGate | None:
    """The gate fitted on requests scored by their best tool (its corrected ``relevance`` and
    the verifier's logit for it) and whether a tool serves them; ``None`` when both kinds are
    not present or relevance alone does not raise the odds."""
    fitted = fit_in_relevance_units(relevance, np.asarray(logits).reshape(-1, 1), applies, l2=l2)
    if fitted is None:
        return None
    relevance_weight, mean, scale, weights, offset = fitted
    return VerifierGate(
        float(mean[0]), float(scale[0]), float(weights[0]), relevance_weight, offset
    )


def load_head(
    folder: Path, data: Mapping[str, Any], where: str, *, threads: int = 1, reads_cjk: bool = False
) -> VerifierHead:
    """The verifier whose head ``data`` holds, its ONNX export in ``folder``."""
    from skillswitch.router.encoders import OnnxEncoder

    try:
        weights = np.array([float(w) for w in data["weights"]], dtype=np.float32)
        bias = float(data["bias"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: 'verifier' is malformed ({exc}); fit the encoder again"
        ) from None
    encoder = OnnxEncoder(folder, threads=threads)
    if encoder.dimension != len(weights) or not math.isfinite(bias):
        raise ValueError(
            f"{where}: the verifier's head has {len(weights)} weights for a "
            f"{encoder.dimension}-dimensional encoder; fit the encoder again"
        )
    return VerifierHead(encoder, weights, bias, reads_cjk)


def load_verifier(
    folder: Path, data: object, where: str, *, threads: int = 1, reads_cjk: bool = False
) -> ToolVerifier:
    """The verifier and gate a manifest entry ``data`` describes, the export in ``folder``."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: 'verifier' is not an object; fit the encoder again")
    gate = VerifierGate.from_json(data.get("gate"), where)
    return ToolVerifier(load_head(folder, data, where, threads=threads, reads_cjk=reads_cjk), gate)
