"""The route of ``POST /v1/chat/completions``: declared to FastAPI (the OpenAPI spec is made
from it), and answered by ``ChatCompletionsFastPath`` before FastAPI's routing."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from skillswitch.exceptions import SkillSwitchError
from skillswitch.server.api.chat_completions.protocol import ChatCompletion, ChatCompletionRequest
from skillswitch.server.api.chat_completions.serving import ChatCompletionsServing
from skillswitch.server.api.openapi import (
    GUARD_ERRORS,
    SSE_EVENT,
    error_responses,
    json_request_body,
)
from skillswitch.server.openai_errors import OpenAIError, error_for, validation_error
from skillswitch.server.wire import parse_body, parse_json, read_body

__all__ = ["PATH", "ChatCompletionsFastPath", "router"]

PATH = "/v1/chat/completions"

router = APIRouter()


@router.post(
    PATH,
    response_model=None,
    openapi_extra=json_request_body(ChatCompletionRequest),
    responses={
        200: {
            "model": ChatCompletion,
            "description": "The answer; with stream: true, server-sent chat.completion.chunk "
            "events ending with data: [DONE].",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        **error_responses(400, 404, 422, *GUARD_ERRORS, 502, 504),
    },
)
async def create_chat_completion(request: Request) -> Response:
    """OpenAI's chat completions, answered by skillswitch's experts; ``stream: true`` for
    server-sent events. ``model``: ``skillswitch`` (routed by skill), ``skillswitch/<skill>``
    (that skill's experts) or an expert's name (that expert, no routing)."""
    serving: ChatCompletionsServing = request.app.state.chat_completions
    body = await parse_body(request, ChatCompletionRequest)
    return await serving.create(body, request)


class ChatCompletionsFastPath:
    """A plain ASGI middleware that answers ``POST /v1/chat/completions`` itself, as the route
    above would (same serving, same error answers as the app's handlers; anything else raised
    goes on to the app's 500 handler), without FastAPI's routing, request and dependency
    machinery: ~15% of a request's CPU with routing bypassed (py-spy,
    benchmarks/http_overhead.py). Every other request goes on to the app."""

    def __init__(self, app: ASGIApp, *, serving: ChatCompletionsServing) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = parse_json(await read_body(receive), ChatCompletionRequest)
            response = await self.serving.create(body, Request(scope, receive))
        except OpenAIError as exc:
            response = exc.response()
        except SkillSwitchError as exc:
            response = error_for(exc).response()
        except ValidationError as exc:
            response = validation_error(exc.errors(include_url=False)).response()
        await response(scope, receive, send)
