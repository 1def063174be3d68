"""The reference runtime: sentence-transformers on PyTorch (slow to import, exact by definition)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillswitch.exceptions import MissingDependencyError
from skillswitch.router.encoders.base import Embeddings, normalise

__all__ = ["SentenceTransformerEncoder"]


class SentenceTransformerEncoder:
    """Embeddings from a local sentence-transformers folder, computed by sentence-transformers."""

    def __init__(self, folder: Path, *, name: str, fingerprint: str, threads: int = 2) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise MissingDependencyError(
                "router.encoder.runtime: torch", "train", exc.name or "sentence_transformers"
            ) from None
        torch.set_num_threads(threads)
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self._name = name
        self._fingerprint = fingerprint
        self._lock = threading.Lock()
        # renamed in sentence-transformers 6 (the old name warns)
        measure = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dimension = measure()
        self._dimension = int(dimension) if dimension is not None else 0

    @property
    def name(self) -> str:
        return f"{self._name} (torch)"

    @property
    def identity(self) -> str:
        return f"torch:{self._name}:{self._fingerprint}"

    def encode(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=64, convert_to_numpy=True, show_progress_bar=False
            )
        return normalise(np.asarray(vectors))
