"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint, via the official SDK."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skillswitch.exceptions import EncoderError, EncoderHTTPError
from skillswitch.router.encoders.base import Embeddings, normalise

__all__ = ["OpenAIEmbeddingEncoder"]


class OpenAIEmbeddingEncoder:
    """Calls ``POST {base_url}/embeddings`` in batches; vectors are re-normalised locally.

    >>> encoder = OpenAIEmbeddingEncoder("http://127.0.0.1:8000/v1", "minilm")  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch_size: int = 256,
        max_retries: int = 2,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._batch_size = batch_size
        import openai  # imported here: it costs ~0.3 s and most routers never call an endpoint

        # The SDK insists on a key; local endpoints usually ignore it.
        self._client = openai.OpenAI(
            base_url=self._base_url,
            api_key=api_key or "no-key",
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        return f"{self._model} (openai-compatible {self._base_url})"

    @property
    def identity(self) -> str:
        return f"openai:{self._base_url}:{self._model}"

    def encode(self, texts: Sequence[str]) -> Embeddings:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        chunks = [
            self._encode_batch(list(texts[start : start + self._batch_size]))
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def close(self) -> None:
        self._client.close()

    def _encode_batch(self, texts: list[str]) -> Embeddings:
        import openai

        endpoint = f"{self._base_url}/embeddings"
        try:
            response = self._client.embeddings.create(
                model=self._model, input=texts, encoding_format="float"
            )
        except openai.APIStatusError as exc:
            raise EncoderHTTPError(endpoint, exc.status_code, exc.response.text) from None
        except openai.APIConnectionError as exc:
            raise EncoderError(f"cannot reach embeddings endpoint {endpoint}: {exc}") from None
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EncoderError(
                f"{endpoint} returned {len(rows)} embeddings for {len(texts)} inputs"
            )
        matrix = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise EncoderError(f"{endpoint} returned embeddings of shape {matrix.shape}")
        if self._dimension is not None and matrix.shape[1] != self._dimension:
            raise EncoderError(
                f"{endpoint} changed embedding size from {self._dimension} to {matrix.shape[1]}"
            )
        self._dimension = int(matrix.shape[1])
        return normalise(matrix)
