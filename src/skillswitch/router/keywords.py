"""Map a request's keywords onto the keywords that have profiles (nearest by embedding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skillswitch.router.encoders import EmbeddingCache, Encoder
from skillswitch.router.profiles import ExpertProfiles

__all__ = ["KeywordMatcher"]


class KeywordMatcher:
    """Each request keyword maps to its nearest profiled keyword when their cosine similarity
    reaches ``min_similarity``; the similarity becomes that skill's weight."""

    def __init__(
        self,
        profiles: ExpertProfiles,
        encoder: Encoder,
        *,
        cache: EmbeddingCache | None = None,
        min_similarity: float = 0.5,
    ) -> None:
        self.keywords = profiles.keywords
        self.encoder = encoder
        self.cache = cache
        self.min_similarity = min_similarity
        self._vectors = self._encode(self.keywords) if self.keywords else np.zeros((0, 1))

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.cache is not None:
            return np.asarray(self.cache.encode(self.encoder, list(texts)))
        return np.asarray(self.encoder.encode(list(texts)))

    def match(self, keywords: Sequence[str]) -> dict[str, float]:
        """{profiled keyword: similarity} for the request's keywords (best match kept)."""
        if not keywords or not self.keywords:
            return {}
        similarity = self._encode(keywords) @ self._vectors.T
        matched: dict[str, float] = {}
        for row in similarity:
            best = int(np.argmax(row))
            if row[best] >= self.min_similarity:
                word = self.keywords[best]
                matched[word] = max(matched.get(word, 0.0), float(row[best]))
        return matched
