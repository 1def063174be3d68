"""The encoder seam: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Embeddings", "Encoder", "normalise"]

Embeddings = npt.NDArray[np.float32]
"""A ``(n, dimension)`` float32 matrix whose rows have unit L2 norm."""


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into unit-length embeddings. Implementations must be thread-safe.

    ``identity`` names the model *and* its weights/runtime: two encoders with the same identity
    produce the same vectors, so it keys the on-disk embedding cache.
    """

    @property
    def name(self) -> str:
        """Short human-readable name for traces, e.g. ``all-MiniLM-L6-v2 (onnx)``."""
        ...

    @property
    def identity(self) -> str:
        """Stable key of model + weights + runtime, for caches."""
        ...

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Embed ``texts`` (an empty sequence gives a ``(0, d)`` matrix when ``d`` is known)."""
        ...


def normalise(vectors: npt.NDArray[np.floating]) -> Embeddings:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Embeddings = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit
