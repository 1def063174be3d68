"""Classifiers saved by ``skillswitch fit intents``: an exported encoder plus a linear head.

Artifact folder::

    artifact.json   labels, head settings, the threshold chosen on validation data, provenance
    head.npz        weights (classes x dimension) and bias (classes,)
    encoder/        the (possibly fine-tuned) encoder exported to ONNX
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    "LinearHead",
    "TrainedArtifact",
    "load_trained_router",
    "read_artifact",
    "write_artifact",
]

ARTIFACT_FORMAT = 1
MANIFEST = "artifact.json"
HEAD = "head.npz"
ENCODER = "encoder"


class LinearHead:
    """Softmax over ``scale * cos(x, w_c) + b_c`` (cosine head) or ``scale * x.w_c + b_c``.

    Scores are class probabilities; an out-of-scope class, when trained, gives the reject score.
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

    @property
    def name(self) -> str:
        kind = "cosine" if self.cosine else "linear"
        extra = ", reject class" if self._reject is not None else ""
        return f"trained {kind} head ({len(self.skills)} skills{extra})"

    def scores(self, queries: Embeddings) -> Scores:
        logits = queries @ self._weights + self._bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        reject = probabilities[:, self._reject] if self._reject is not None else None
        return Scores(probabilities[:, self._keep].astype(np.float32), reject)


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
    provenance: dict[str, Any] = field(default_factory=dict)

    def head(self) -> LinearHead:
        return LinearHead(
            self.labels,
            self.weights,
            self.bias,
            scale=self.scale,
            cosine=self.cosine,
            out_of_scope_label=self.out_of_scope_label,
        )


def write_artifact(folder: Path, artifact: TrainedArtifact) -> None:
    """Write ``artifact.json`` and ``head.npz`` (the encoder folder is written by the trainer)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / HEAD, weights=artifact.weights, bias=artifact.bias)
    calibration = artifact.calibration
    manifest = {
        "format": ARTIFACT_FORMAT,
        "kind": "skillswitch.intent-classifier",
        "method": artifact.method,
        "labels": list(artifact.labels),
        "out_of_scope_label": artifact.out_of_scope_label,
        "head": {"scale": artifact.scale, "cosine": artifact.cosine},
        "threshold": artifact.threshold,
        "calibration": None
        if calibration is None
        else {name: getattr(calibration, name) for name in calibration.__slots__},
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
