"""``POST /v1/embeddings`` on the local backend's embedding models."""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from skillswitch.exceptions import SkillSwitchError
from skillswitch.server.models_api.common import backend_error, ignored
from skillswitch.server.models_api.embeddings.protocol import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from skillswitch.server.openai_errors import OpenAIError

if TYPE_CHECKING:
    from skillswitch.inference.backend import Embeddings, LocalBackend

__all__ = ["EmbeddingsServing"]


class EmbeddingsServing:
    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    async def create(self, body: EmbeddingRequest, request: Request) -> Response:
        del request  # an embedding call is short and runs between batches: nothing to cancel
        headers = ignored("embeddings", body.ignored_fields())
        embeddings = await self._embed(body.model, body.texts())
        width = len(embeddings.vectors[0]) if embeddings.vectors else 0
        if body.dimensions is not None and body.dimensions != width:
            raise OpenAIError(
                400,
                f"dimensions is {body.dimensions}, but model {body.model!r} makes "
                f"{width}-dimensional vectors; leave out dimensions or give {width}",
                param="dimensions",
            )
        data = [
            EmbeddingData(index=index, embedding=_encoded(vector, body.encoding_format))
            for index, vector in enumerate(embeddings.vectors)
        ]
        answer = EmbeddingResponse(
            data=data,
            model=body.model,
            usage=EmbeddingUsage(
                prompt_tokens=embeddings.prompt_tokens, total_tokens=embeddings.prompt_tokens
            ),
        )
        return JSONResponse(answer.model_dump(mode="json"), headers=headers)

    async def _embed(self, model: str, texts: list[str]) -> Embeddings:
        try:
            return await self.backend.embed(model, texts)
        except (SkillSwitchError, ValueError, RuntimeError) as exc:
            mapped = backend_error(
                exc, device=self.backend.device, model=model, prompt_param="input"
            )
            if mapped is not exc:
                raise mapped from None
            if isinstance(exc, ValueError):  # the backend's own checks of the input
                raise OpenAIError(400, str(exc), param="input") from None
            raise


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
