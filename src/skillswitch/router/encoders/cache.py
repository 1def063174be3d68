"""On-disk cache of embeddings keyed by encoder identity and text.

Start-up encodes only the example utterances that changed since the last run. SQLite gives
atomic writes and safe concurrent readers (several server workers may share one cache).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillswitch.router.encoders.base import Embeddings, Encoder

__all__ = ["CachedEncoder", "EmbeddingCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT NOT NULL,
    text_sha BLOB NOT NULL,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (encoder, text_sha)
) WITHOUT ROWID
"""
_BATCH = 500  # SQLite's default limit on host parameters is 999 (older builds)


class EmbeddingCache:
    """``encode(encoder, texts)`` returns cached rows and encodes (then stores) only misses.

    >>> cache = EmbeddingCache(Path("/tmp/embeddings.sqlite"))  # doctest: +SKIP
    >>> vectors = cache.encode(encoder, ["hello"])  # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(_SCHEMA)
        self._connection.commit()
        self.hits = 0
        self.misses = 0

    def encode(self, encoder: Encoder, texts: Sequence[str]) -> Embeddings:
        keys = [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]
        found = self._lookup(encoder.identity, keys)
        missing = [i for i, key in enumerate(keys) if key not in found]
        unique_missing: dict[bytes, int] = {}
        for index in missing:
            unique_missing.setdefault(keys[index], index)  # encode a repeated text once
        if unique_missing:
            order = list(unique_missing.values())
            fresh = encoder.encode([texts[i] for i in order])
            self._store(encoder.identity, [keys[i] for i in order], fresh)
            for row, index in enumerate(order):
                found[keys[index]] = fresh[row]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _lookup(self, identity: str, keys: list[bytes]) -> dict[bytes, Embeddings]:
        out: dict[bytes, Embeddings] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _BATCH):
                chunk = unique[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(
                    "SELECT text_sha, dimension, vector FROM embeddings "
                    f"WHERE encoder = ? AND text_sha IN ({marks})",
                    (identity, *chunk),
                ).fetchall()
                for sha, dimension, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape[0] == dimension:  # ignore a torn row rather than trust it
                        out[bytes(sha)] = vector
        return out

    def _store(self, identity: str, keys: list[bytes], vectors: Embeddings) -> None:
        rows = [
            (
                identity,
                key,
                int(vector.shape[0]),
                np.ascontiguousarray(vector, np.float32).tobytes(),
            )
            for key, vector in zip(keys, vectors, strict=True)
        ]
        with self._lock:
            self._connection.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows
            )
            self._connection.commit()


class CachedEncoder:
    """An encoder whose vectors go through an ``EmbeddingCache``: a text is embedded once per
    encoder identity, across runs."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache) -> None:
        self.inner, self.cache = encoder, cache
        self.name, self.identity = encoder.name, encoder.identity

    def encode(self, texts: Sequence[str]) -> Embeddings:
        return self.cache.encode(self.inner, texts)
