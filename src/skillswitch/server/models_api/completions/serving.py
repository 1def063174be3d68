"""``POST /v1/completions`` on the local backend: raw text in, text out, streamed or not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from skillswitch.server.models_api.common import (
    Generation,
    GenerationStream,
    Usage,
    ignored,
    submit,
)
from skillswitch.server.models_api.completions.protocol import (
    DEFAULT_MAX_TOKENS,
    Choice,
    Completion,
    CompletionChunk,
    CompletionRequest,
)
from skillswitch.server.wire import check_n, new_id, now

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.requests import GenerationResult

__all__ = ["CompletionsServing"]


class CompletionsServing:
    """Turns a completion request into a generation on the backend and its answer."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    async def create(self, body: CompletionRequest, request: Request) -> Response:
        headers = ignored("completions", body.ignored_fields())
        check_n(body.n)
        prompt = body.text()
        params = body.params(body.max_tokens or DEFAULT_MAX_TOKENS)
        handle = submit(
            self.backend, body.model, prompt, params, prompt_param="prompt", stream=body.stream
        )
        generation = Generation(handle, request, self.backend, "prompt")
        echoed = prompt if body.echo else ""
        if body.stream:
            await generation.start_stream()
            stream = _Stream(new_id("cmpl"), now(), body.model, body.include_usage(), echoed)
            events = generation.events(stream.opening(), stream.delta, stream.closing)
            response = GenerationStream(generation, events)
            response.headers.update(headers)
            return response
        result = await generation.result()
        completion = Completion(
            id=new_id("cmpl"),
            created=now(),
            model=body.model,
            choices=[Choice(text=echoed + result.text, finish_reason=result.finish_reason)],
            usage=Usage.of(result),
        )
        return JSONResponse(completion.model_dump(mode="json"), headers=headers)


class _Stream:
    """The text_completion events of one answer."""

    def __init__(
        self, chunk_id: str, created: int, model: str, include_usage: bool, echoed: str
    ) -> None:
        self.id, self.created, self.model = chunk_id, created, model
        self.include_usage = include_usage
        self.echoed = echoed

    def _chunk(self, choices: list[Choice], usage: Usage | None = None) -> dict[str, Any]:
        chunk = CompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )
        return chunk.model_dump(mode="json", exclude=None if self.include_usage else {"usage"})

    def opening(self) -> list[dict[str, Any]]:
        return [self.delta(self.echoed)] if self.echoed else []

    def delta(self, text: str) -> dict[str, Any]:
        return self._chunk([Choice(text=text)])

    def closing(self, result: GenerationResult) -> list[dict[str, Any]]:
        events = [self._chunk([Choice(text="", finish_reason=result.finish_reason)])]
        if self.include_usage:
            events.append(self._chunk([], Usage.of(result)))
        return events
