"""MiniLM-style sentence encoders run with ONNX Runtime.

The exported graph holds the transformer, mean (or CLS) pooling and L2 normalisation, so one
``session.run`` gives the final embedding. Importing this module does not import torch: a cold
``skillswitch route`` starts in well under a second.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skillswitch.exceptions import ArtifactError
from skillswitch.router.encoders.base import Embeddings

__all__ = ["MANIFEST_NAME", "OnnxEncoder", "OnnxManifest", "Precision"]

MANIFEST_NAME = "encoder.json"
MODEL_NAME = "model.onnx"
INT8_MODEL_NAME = "model.int8.onnx"  # written by skillswitch.router.encoders.quantize
TOKENIZER_NAME = "tokenizer.json"
MANIFEST_FORMAT = 1

Precision = Literal["float32", "int8"]
_MODEL_FILES: dict[str, str] = {"float32": MODEL_NAME, "int8": INT8_MODEL_NAME}

# Sorting a large batch by length before padding keeps each chunk's padding small.
_CHUNK = 64


@dataclass(frozen=True, slots=True)
class OnnxManifest:
    """What ``encoder.json`` records about an exported encoder folder."""

    name: str
    source_fingerprint: str
    dimension: int
    max_length: int
    pooling: str
    inputs: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "source_fingerprint": self.source_fingerprint,
            "dimension": self.dimension,
            "max_length": self.max_length,
            "pooling": self.pooling,
            "inputs": list(self.inputs),
        }

    @classmethod
    def read(cls, folder: Path) -> OnnxManifest:
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise ArtifactError(
                    f"{path} has format {data.get('format')!r}, expected {MANIFEST_FORMAT}; "
                    "export the encoder again"
                )
            return cls(
                name=str(data["name"]),
                source_fingerprint=str(data["source_fingerprint"]),
                dimension=int(data["dimension"]),
                max_length=int(data["max_length"]),
                pooling=str(data["pooling"]),
                inputs=tuple(str(i) for i in data["inputs"]),
            )
        except FileNotFoundError:
            raise ArtifactError(
                f"{folder} is not an exported encoder (no {MANIFEST_NAME}); export it with "
                "`skillswitch warmup` or point at the folder written by `skillswitch fit intents`"
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path} is damaged ({exc}); export the encoder again") from None


class OnnxEncoder:
    """Sentence embeddings from an exported folder (``model.onnx`` + ``tokenizer.json``;
    ``model.int8.onnx`` too for ``precision="int8"``, see ``quantize_encoder``).

    >>> encoder = OnnxEncoder(folder)  # doctest: +SKIP
    >>> encoder.encode(["hello"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, folder: Path, *, threads: int = 1, precision: Precision = "float32") -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        if precision not in _MODEL_FILES:
            raise ValueError(f"precision {precision!r} is not one of {sorted(_MODEL_FILES)}")
        self.folder = folder
        self.precision = precision
        self.threads = threads
        self.manifest = OnnxManifest.read(folder)
        model_file = _MODEL_FILES[precision]
        for required in (model_file, TOKENIZER_NAME):
            if not (folder / required).is_file():
                raise ArtifactError(
                    f"{folder} lacks {required}; "
                    + (
                        "write it with skillswitch.router.encoders.quantize_encoder(folder), or "
                        "use precision float32"
                        if required == INT8_MODEL_NAME
                        else "export the encoder again"
                    )
                )
        try:
            tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_NAME))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{folder / TOKENIZER_NAME} cannot be read: {exc}") from None
        tokenizer.enable_truncation(self.manifest.max_length)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning workers keep both cores busy for a while after each run, which starved the
        # numpy work that follows (the classifier) and other requests: measured 2-3x slower
        # routing on 2 cores with spinning on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(
                str(folder / model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"{folder / model_file} cannot be loaded: {exc}") from None
        self._inputs = {i.name for i in self._session.get_inputs()}
        # Tokenizer objects are not safe to share across threads while padding is configured.
        self._lock = threading.Lock()

    def at_precision(self, precision: Precision) -> OnnxEncoder:
        """This encoder, or one over the same export at another precision (a new session)."""
        if precision == self.precision:
            return self
        return OnnxEncoder(self.folder, threads=self.threads, precision=precision)

    @property
    def name(self) -> str:
        return f"{self.manifest.name} (onnx{' int8' if self.precision == 'int8' else ''})"

    @property
    def identity(self) -> str:
        # float32 keeps the identity it always had, so cached embeddings stay valid.
        kind = "onnx" if self.precision == "float32" else f"onnx-{self.precision}"
        return f"{kind}:{self.manifest.name}:{self.manifest.source_fingerprint}"

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    def encode(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.precision == "int8":
            # Dynamic quantisation scales activations by their range over the whole batch, so a
            # text's int8 embedding would depend on its batch-mates (cosine down to 0.95 between
            # batched and single on CLINC150). One text per run keeps an embedding a function of
            # its text alone, as the cache and the router assume; it costs little here (1,000
            # CLINC150 texts in 1.5 s against 1.9 s for float32 batched, one thread).
            out = np.empty((len(texts), self.dimension), dtype=np.float32)
            for index, text in enumerate(texts):
                out[index] = self._encode_chunk([text])[0]
            return out
        if len(texts) <= _CHUNK:
            return self._encode_chunk(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), _CHUNK):
            indices = order[start : start + _CHUNK]
            out[indices] = self._encode_chunk([texts[i] for i in indices])
        return out

    def _encode_chunk(self, texts: list[str]) -> Embeddings:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (embeddings,) = self._session.run(["embedding"], feeds)
        return np.asarray(embeddings, dtype=np.float32)
