"""Classifiers saved by ``skillswitch fit intents``: an exported encoder plus a linear head.

Artifact folder::

    artifact.json   labels, head settings, the threshold chosen on validation data, provenance
    head.npz        weights (classes x dimension) and bias (classes,)
    encoder/        the (possibly fine-tuned) encoder exported to ONNX
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from skillswitch.exceptions import ArtifactError
from skillswitch.router.calibration import Calibration
from skillswitch.router.encoders.base import Embeddings
from skillswitch.router.encoders.onnx import OnnxEncoder
from skillswitch.router.router import Router
from skillswitch.router.scoring import Scores

__all__ = [
    "ARTIFACT_FORMAT",
    "FEATURES",
    "Feature",
    "LinearHead",
    "ScoreTerm",
    "TrainedArtifact",
    "load_trained_router",
    "read_artifact",
    "write_artifact",
]

ARTIFACT_FORMAT = 1
MANIFEST = "artifact.json"
HEAD = "head.npz"
ENCODER = "encoder"


Feature = Literal["probability", "energy", "nearest", "oos_nearest"]
"""In-scope evidence a trained head can combine (higher = more in scope):

- ``probability``: the best skill's softmax probability (the out-of-scope class included);
- ``energy``: log-sum-exp of the skill logits (Liu et al., 2020, "Energy-based OOD detection");
- ``nearest``: cosine to the nearest training example of any skill;
- ``oos_nearest``: minus the mean cosine to the 5 nearest out-of-scope training examples.
"""
FEATURES: tuple[Feature, ...] = ("probability", "energy", "nearest", "oos_nearest")
_OOS_NEIGHBOURS = 5


@dataclass(frozen=True, slots=True)
class ScoreTerm:
    """``weight * (feature - mean) / std``; mean and std come from validation in-scope items."""

    feature: Feature
    weight: float
    mean: float = 0.0
    std: float = 1.0


class LinearHead:
    """Softmax over ``scale * cos(x, w_c) + b_c`` (cosine head) or ``scale * x.w_c + b_c``.

    Skill scores are class probabilities. The out-of-scope decision uses either the reject class
    (when ``terms`` is empty) or a weighted sum of standardised features (``terms``), which may
    need the embeddings of the training items (``bank``) and of the out-of-scope ones.
    """

    def __init__(
        self,
        labels: Sequence[str],
        weights: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        *,
        scale: float,
        cosine: bool,
        out_of_scope_label: str | None,
        terms: Sequence[ScoreTerm] = (),
        bank: npt.NDArray[np.float32] | None = None,
        oos_bank: npt.NDArray[np.float32] | None = None,
    ) -> None:
        if weights.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise ArtifactError(
                f"head has {weights.shape[0]} weight rows and {bias.shape} bias for "
                f"{len(labels)} labels"
            )
        matrix = np.asarray(weights, dtype=np.float32)
        if cosine:
            matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self._weights = np.ascontiguousarray(matrix.T * np.float32(scale))
        self._bias = np.asarray(bias, dtype=np.float32)
        self.labels = tuple(labels)
        self._reject = (
            self.labels.index(out_of_scope_label)
            if out_of_scope_label is not None and out_of_scope_label in self.labels
            else None
        )
        self._keep = np.array([i for i in range(len(self.labels)) if i != self._reject])
        self.skills = tuple(self.labels[i] for i in self._keep)
        self.cosine = cosine
        self.scale = scale
        self.terms = _checked_terms(terms, bank, oos_bank)
        self.bank = None if bank is None else np.asarray(bank, dtype=np.float32)
        self.oos_bank = None if oos_bank is None else np.asarray(oos_bank, dtype=np.float32)
        self._bank = None if bank is None else np.ascontiguousarray(bank.T, dtype=np.float32)
        self._oos_bank = (
            None if oos_bank is None else np.ascontiguousarray(oos_bank.T, dtype=np.float32)
        )

    def with_terms(self, terms: Sequence[ScoreTerm]) -> LinearHead:
        """This head with ``terms`` as its out-of-scope score."""
        head = copy.copy(self)
        head.terms = _checked_terms(terms, self.bank, self.oos_bank)
        return head

    @property
    def name(self) -> str:
        kind = "cosine" if self.cosine else "linear"
        if self.terms:
            rule = " + ".join(f"{t.weight:g}*{t.feature}" for t in self.terms)
        else:
            rule = "reject class" if self._reject is not None else "max probability"
        return f"trained {kind} head ({len(self.skills)} skills; out of scope: {rule})"

    def features(self, queries: Embeddings) -> dict[Feature, npt.NDArray[np.float32]]:
        """Every feature the artifact can use, for ``queries`` (used to fit ``terms``)."""
        return self._features(queries, *self._logits(queries))

    def scores(self, queries: Embeddings) -> Scores:
        logits, probabilities = self._logits(queries)
        skills = probabilities[:, self._keep].astype(np.float32)
        if not self.terms:
            reject = probabilities[:, self._reject] if self._reject is not None else None
            return Scores(skills, reject)
        values = self._features(queries, logits, probabilities)
        level = np.zeros(queries.shape[0], dtype=np.float32)
        for term in self.terms:
            level += np.float32(term.weight) * (values[term.feature] - term.mean) / term.std
        return Scores(skills, None, level)

    def _features(
        self,
        queries: Embeddings,
        logits: npt.NDArray[np.float32],
        probabilities: npt.NDArray[np.float32],
    ) -> dict[Feature, npt.NDArray[np.float32]]:
        inside = logits[:, self._keep]
        peak = inside.max(axis=1)
        out: dict[Feature, npt.NDArray[np.float32]] = {
            "probability": probabilities[:, self._keep].max(axis=1),
            "energy": (peak + np.log(np.exp(inside - peak[:, None]).sum(axis=1))).astype(
                np.float32
            ),
        }
        if self._bank is not None and self._bank.shape[1]:
            out["nearest"] = (queries @ self._bank).max(axis=1)
        if self._oos_bank is not None and self._oos_bank.shape[1]:
            similar = queries @ self._oos_bank
            k = min(_OOS_NEIGHBOURS, similar.shape[1])
            top = -np.partition(-similar, k - 1, axis=1)[:, :k]
            out["oos_nearest"] = (-top.mean(axis=1)).astype(np.float32)
        return out

    def _logits(
        self, queries: Embeddings
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        logits = queries @ self._weights + self._bias
        shifted = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return logits, probabilities


def _checked_terms(
    terms: Sequence[ScoreTerm],
    bank: npt.NDArray[np.float32] | None,
    oos_bank: npt.NDArray[np.float32] | None,
) -> tuple[ScoreTerm, ...]:
    needed = {term.feature for term in terms}
    if "nearest" in needed and (bank is None or bank.shape[0] == 0):
        raise ArtifactError("the 'nearest' score needs the training embeddings (bank)")
    if "oos_nearest" in needed and (oos_bank is None or oos_bank.shape[0] == 0):
        raise ArtifactError("the 'oos_nearest' score needs out-of-scope training examples")
    return tuple(terms)


@dataclass(frozen=True)
class TrainedArtifact:
    """What ``artifact.json`` + ``head.npz`` hold."""

    labels: tuple[str, ...]
    out_of_scope_label: str | None
    weights: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    scale: float
    cosine: bool
    threshold: float
    calibration: Calibration | None
    method: str
    terms: tuple[ScoreTerm, ...] = ()
    bank: npt.NDArray[np.float32] | None = None
    oos_bank: npt.NDArray[np.float32] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def head(self) -> LinearHead:
        return LinearHead(
            self.labels,
            self.weights,
            self.bias,
            scale=self.scale,
            cosine=self.cosine,
            out_of_scope_label=self.out_of_scope_label,
            terms=self.terms,
            bank=self.bank,
            oos_bank=self.oos_bank,
        )


def write_artifact(folder: Path, artifact: TrainedArtifact) -> None:
    """Write ``artifact.json`` and ``head.npz`` (the encoder folder is written by the trainer)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[Any]] = {"weights": artifact.weights, "bias": artifact.bias}
    # Banks are stored as float16: half the size, and cosines change by < 1e-3.
    if artifact.bank is not None:
        arrays["bank"] = artifact.bank.astype(np.float16)
    if artifact.oos_bank is not None:
        arrays["oos_bank"] = artifact.oos_bank.astype(np.float16)
    np.savez(folder / HEAD, **arrays)  # type: ignore[arg-type]
    calibration = artifact.calibration
    manifest = {
        "format": ARTIFACT_FORMAT,
        "kind": "skillswitch.intent-classifier",
        "method": artifact.method,
        "labels": list(artifact.labels),
        "out_of_scope_label": artifact.out_of_scope_label,
        "head": {
            "scale": artifact.scale,
            "cosine": artifact.cosine,
            "out_of_scope_score": [
                {"feature": t.feature, "weight": t.weight, "mean": t.mean, "std": t.std}
                for t in artifact.terms
            ],
        },
        "threshold": artifact.threshold,
        "calibration": None if calibration is None else calibration.to_dict(),
        "encoder": ENCODER,
        "provenance": artifact.provenance,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_artifact(folder: Path) -> TrainedArtifact:
    manifest_file = folder / MANIFEST
    if not folder.is_dir():
        raise ArtifactError(
            f"classifier artifact {str(folder)!r} does not exist; create it with "
            "`skillswitch fit intents --train F --val F --out DIR`"
        )
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{str(folder)!r} is not a classifier artifact (no {MANIFEST}); point "
            "router.classifier.artifact at a folder written by `skillswitch fit intents`"
        ) from None
    except ValueError as exc:
        raise ArtifactError(f"{manifest_file} is not valid JSON ({exc}); fit again") from None
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{manifest_file} has format {manifest.get('format')!r}; this skillswitch reads "
            f"format {ARTIFACT_FORMAT}. Fit the classifier again"
        )
    try:
        with np.load(folder / HEAD) as arrays:
            weights = np.asarray(arrays["weights"], dtype=np.float32)
            bias = np.asarray(arrays["bias"], dtype=np.float32)
            bank = np.asarray(arrays["bank"], np.float32) if "bank" in arrays else None
            oos_bank = np.asarray(arrays["oos_bank"], np.float32) if "oos_bank" in arrays else None
        terms = []
        for term in manifest["head"].get("out_of_scope_score", []):
            if term["feature"] not in FEATURES:
                raise ArtifactError(
                    f"{manifest_file}: unknown score feature {term['feature']!r}; this "
                    f"skillswitch knows {', '.join(FEATURES)}"
                )
            terms.append(
                ScoreTerm(
                    term["feature"], float(term["weight"]), float(term["mean"]), float(term["std"])
                )
            )
        calibration_data = manifest.get("calibration")
        return TrainedArtifact(
            labels=tuple(str(label) for label in manifest["labels"]),
            out_of_scope_label=manifest.get("out_of_scope_label"),
            weights=weights,
            bias=bias,
            scale=float(manifest["head"]["scale"]),
            cosine=bool(manifest["head"]["cosine"]),
            threshold=float(manifest["threshold"]),
            calibration=Calibration(**calibration_data) if calibration_data else None,
            method=str(manifest.get("method", "unknown")),
            terms=tuple(terms),
            bank=bank,
            oos_bank=oos_bank,
            provenance=dict(manifest.get("provenance", {})),
        )
    except FileNotFoundError:
        raise ArtifactError(f"{folder} lacks {HEAD}; fit the classifier again") from None
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactError(f"{folder} is damaged ({exc!r}); fit the classifier again") from None


def load_trained_router(
    folder: Path,
    *,
    threshold: float | str = "auto",
    threads: int = 2,
    top_k: int = 3,
    margin: float = 0.05,
    max_chars: int = 2000,
    out_of_scope_label: str = "out_of_scope",
    split_clauses: bool = True,
) -> Router:
    """A router over a saved artifact. ``threshold: auto`` takes the one chosen at fit time."""
    artifact = read_artifact(folder)
    head = artifact.head()
    encoder = OnnxEncoder(folder / ENCODER, threads=threads)
    if encoder.dimension != artifact.weights.shape[1]:
        raise ArtifactError(
            f"{folder}: encoder gives {encoder.dimension}-d embeddings but the head expects "
            f"{artifact.weights.shape[1]}; fit the classifier again"
        )
    auto = threshold == "auto"
    return Router(
        encoder,
        head,
        threshold=artifact.threshold if auto else float(threshold),
        top_k=top_k,
        margin=margin,
        max_chars=max_chars,
        out_of_scope_label=out_of_scope_label,
        split_clauses=split_clauses,
        calibration=artifact.calibration if auto else None,
    )
