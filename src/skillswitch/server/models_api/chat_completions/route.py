"""The route of ``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skillswitch.server.models_api.chat_completions.protocol import ChatCompletionRequest
from skillswitch.server.models_api.chat_completions.serving import ChatCompletionsServing
from skillswitch.server.wire import parse_body

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(request: Request) -> Response:
    """OpenAI's chat completions on a local chat model; ``stream: true`` for server-sent
    events."""
    serving: ChatCompletionsServing = request.app.state.chat_completions
    body = await parse_body(request, ChatCompletionRequest)
    return await serving.create(body, request)
