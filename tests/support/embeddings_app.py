"""A small but real OpenAI-compatible ``/v1/embeddings`` server backed by a real encoder.

Models named ``fail-<status>`` answer that HTTP status; ``short`` returns one row too few.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

from skillswitch.router.encoders import Encoder


class EmbeddingsRequest(BaseModel):
    model: str
    input: str | list[str]
    encoding_format: str | None = None


def embeddings_app(encoder: Encoder, *, api_key: str | None = None) -> FastAPI:
    app = FastAPI()
    app.state.requests = 0

    @app.post("/v1/embeddings")
    def embeddings(
        body: EmbeddingsRequest, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        app.state.requests += 1
        if api_key is not None and authorization != f"Bearer {api_key}":
            raise HTTPException(401, detail="invalid api key")
        if body.model.startswith("fail-"):
            raise HTTPException(int(body.model.removeprefix("fail-")), detail="injected failure")
        texts = [body.input] if isinstance(body.input, str) else body.input
        vectors = encoder.encode(texts)
        if body.model == "short":
            vectors = vectors[:-1]
        return {
            "object": "list",
            "model": body.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)
            ][::-1],  # out of order on purpose: clients must sort by index
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    return app
