"""The route of ``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skillswitch.server.api.chat_completions.protocol import ChatCompletion, ChatCompletionRequest
from skillswitch.server.api.chat_completions.serving import ChatCompletionsServing
from skillswitch.server.api.openapi import (
    GUARD_ERRORS,
    SSE_EVENT,
    error_responses,
    json_request_body,
)
from skillswitch.server.wire import parse_body

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/chat/completions",
    response_model=None,
    openapi_extra=json_request_body(ChatCompletionRequest),
    responses={
        200: {
            "model": ChatCompletion,
            "description": "The answer; with stream: true, server-sent chat.completion.chunk "
            "events ending with data: [DONE].",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        **error_responses(400, 404, *GUARD_ERRORS, 502, 504),
    },
)
async def create_chat_completion(request: Request) -> Response:
    """OpenAI's chat completions, answered by skillswitch's experts; ``stream: true`` for
    server-sent events. ``model``: ``skillswitch`` (routed by skill), ``skillswitch/<skill>``
    (that skill's experts) or an expert's name (that expert, no routing)."""
    serving: ChatCompletionsServing = request.app.state.chat_completions
    body = await parse_body(request, ChatCompletionRequest)
    return await serving.create(body, request)
