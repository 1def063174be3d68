from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skillswitch.router.encoders import EmbeddingCache, Embeddings, Encoder


class CountingEncoder:
    """Wraps the real MiniLM encoder and counts what it is asked to encode."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def identity(self) -> str:
        return self.inner.identity

    def encode(self, texts: Sequence[str]) -> Embeddings:
        self.encoded.extend(texts)
        return self.inner.encode(texts)


def test_cache_encodes_only_new_texts_and_survives_restart(tmp_path: Path, minilm: Encoder) -> None:
    counting = CountingEncoder(minilm)
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    first = cache.encode(counting, ["alpha", "beta", "alpha"])
    assert counting.encoded == ["alpha", "beta"]  # the repeat is encoded once
    cache.close()

    reopened = EmbeddingCache(tmp_path / "e.sqlite")
    second = reopened.encode(counting, ["beta", "gamma", "alpha"])
    assert counting.encoded == ["alpha", "beta", "gamma"]
    assert np.array_equal(second[0], first[1])
    assert np.array_equal(second[2], first[0])
    assert np.allclose(second[1], minilm.encode(["gamma"])[0], atol=1e-6)
    assert reopened.hits == 2
    assert reopened.misses == 1


def test_cache_keys_include_the_encoder_identity(tmp_path: Path, minilm: Encoder) -> None:
    class Renamed(CountingEncoder):
        @property
        def identity(self) -> str:
            return "another-model"

    cache = EmbeddingCache(tmp_path / "e.sqlite")
    cache.encode(CountingEncoder(minilm), ["alpha"])
    other = Renamed(minilm)
    cache.encode(other, ["alpha"])
    assert other.encoded == ["alpha"]
