"""``POST /v1/chat/completions`` on the local backend: one choice, streamed or not."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from skillswitch.agents.local_model import format_grammar
from skillswitch.agents.response_format import parse_response_format
from skillswitch.exceptions import GrammarError, RequestError
from skillswitch.server.chat_chunks import ChunkChoice, Delta
from skillswitch.server.models_api.chat_completions.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ResponseMessage,
)
from skillswitch.server.models_api.common import (
    Generation,
    GenerationStream,
    Usage,
    ignored,
    submit,
)
from skillswitch.server.openai_errors import OpenAIError
from skillswitch.server.wire import check_n, new_id, now

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.grammar import OutputGrammar
    from skillswitch.inference.requests import GenerationResult

__all__ = ["ChatCompletionsServing"]


class ChatCompletionsServing:
    """Turns a chat completion request into a generation on the backend and its answer."""

    def __init__(self, backend: LocalBackend, *, default_max_tokens: int) -> None:
        self.backend = backend
        self.default_max_tokens = default_max_tokens

    async def create(self, body: ChatCompletionRequest, request: Request) -> Response:
        headers = ignored("chat.completions", body.ignored_fields())
        check_n(body.n)
        for field in ("tools", "functions"):
            offered = getattr(body, field)
            if offered:
                raise OpenAIError(
                    400,
                    f"{field} holds {len(offered)} tool(s), but model {body.model!r} is a local "
                    "model served without tool calling; leave out tools (or use skillswitch "
                    "serve, whose experts call tools)",
                    param=field,
                )
        if not body.messages:
            raise OpenAIError(400, "messages is empty; send at least one message", param="messages")
        params = body.params(body.max_new_tokens(self.default_max_tokens))
        params = replace(params, grammar=response_grammar(body.response_format))
        messages = [message.to_backend() for message in body.messages]
        handle = submit(
            self.backend, body.model, messages, params, prompt_param="messages", stream=body.stream
        )
        generation = Generation(handle, request, self.backend, "messages")
        if body.stream:
            await generation.start_stream()
            stream = _Stream(new_id("chatcmpl"), now(), body.model, body.include_usage())
            events = generation.events(stream.opening(), stream.delta, stream.closing)
            response = GenerationStream(generation, events)
            response.headers.update(headers)
            return response
        result = await generation.result()
        completion = ChatCompletion(
            id=new_id("chatcmpl"),
            created=now(),
            model=body.model,
            choices=[
                Choice(
                    message=ResponseMessage(content=result.text),
                    finish_reason=result.finish_reason,
                )
            ],
            usage=Usage.of(result),
        )
        return JSONResponse(completion.model_dump(mode="json"), headers=headers)


def response_grammar(response_format: dict[str, Any] | None) -> OutputGrammar | None:
    """The grammar a ``response_format`` asks the answer to be decoded in (None for text): a
    malformed one, or a strict schema with keywords the grammar engine cannot enforce, is a 400
    naming what to change. A schema that is not strict is enforced as far as the engine goes."""
    try:
        asked = parse_response_format(response_format)
        if asked is None:
            return None
        return format_grammar(asked, strict=asked.strict is True)
    except (RequestError, GrammarError) as exc:
        raise OpenAIError(400, str(exc), param="response_format") from None


class _Stream:
    """The chat.completion.chunk events of one answer."""

    def __init__(self, chunk_id: str, created: int, model: str, include_usage: bool) -> None:
        self.id, self.created, self.model = chunk_id, created, model
        self.include_usage = include_usage

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )
        # With include_usage every chunk carries "usage": null until the last one (OpenAI).
        return chunk.model_dump(mode="json", exclude=None if self.include_usage else {"usage"})

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])]

    def delta(self, text: str) -> dict[str, Any]:
        return self._chunk([ChunkChoice(delta=Delta(content=text))])

    def closing(self, result: GenerationResult) -> list[dict[str, Any]]:
        events = [self._chunk([ChunkChoice(delta=Delta(), finish_reason=result.finish_reason)])]
        if self.include_usage:
            events.append(self._chunk([], Usage.of(result)))
        return events
