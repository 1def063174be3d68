"""What the generation endpoints share: the sampling fields, body parsing, the backend's errors
as OpenAI errors, server-sent events, and a generation that is cancelled when its client leaves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import Receive, Scope, Send

from skillswitch.exceptions import (
    ChatTemplateError,
    GrammarError,
    MessagesRefusedError,
    ModelFolderError,
    ModelTooLargeError,
    PromptTooLongError,
    SkillSwitchError,
    ToolCallingUnsupportedError,
    WrongModelKindError,
)
from skillswitch.inference.requests import GenerationParams, GenerationResult
from skillswitch.server.openai_errors import OpenAIError, error_for
from skillswitch.server.wire import IGNORED_FIELDS_HEADER, ignored_fields_text, sse

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.scheduler import GenerationHandle, Prompt

__all__ = [
    "Generation",
    "GenerationStream",
    "SamplingRequest",
    "StreamOptions",
    "Usage",
    "backend_error",
    "ignored",
    "submit",
]

logger = logging.getLogger("skillswitch.server.models_api")

M = TypeVar("M", bound=BaseModel)
MAX_STOP_STRINGS = 16
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed takes


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class SamplingRequest(BaseModel):
    """The fields that chat completions and completions share. Fields that are not declared are
    accepted (clients send many) and logged as ignored, never dropped silently."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _check_stop(cls, value: Any) -> Any:
        if value is None:
            return value
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError(f"stop is {json.dumps(value)}; stop strings must be non-empty")
        if isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError(
                f"stop is {json.dumps(value)[:80]}; give a string or a list of strings"
            )
        if len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"stop has {len(value)} strings; give at most {MAX_STOP_STRINGS}")
        return value

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def params(self, max_tokens: int) -> GenerationParams:
        """The backend's settings (temperature and top_p default to 1, as OpenAI's do); a
        value the backend refuses is a 400."""
        try:
            return GenerationParams(
                max_new_tokens=max_tokens,
                temperature=self.temperature if self.temperature is not None else 1.0,
                top_p=self.top_p if self.top_p is not None else 1.0,
                seed=self.seed,
                stop=self.stop_strings(),
            )
        except ValueError as exc:
            raise OpenAIError(400, str(exc)) from None

    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int

    @classmethod
    def of(cls, result: GenerationResult) -> Usage:
        return cls(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )


def ignored(endpoint: str, names: list[str]) -> dict[str, str]:
    """Log the fields a request sent that the backend does not honour, and the response header
    that tells the client so (empty when there are none)."""
    if not names:
        return {}
    safe = ignored_fields_text(names)
    logger.info("%s: ignoring fields the local backend does not honour: %s", endpoint, safe)
    return {IGNORED_FIELDS_HEADER: safe}


def backend_error(
    exc: BaseException, *, device: str, model: str, prompt_param: str
) -> BaseException:
    """The answer to an error raised by the backend, or ``exc`` itself when it is a bug.

    ``prompt_param`` is the field a too-long prompt came in (``messages`` or ``prompt``).
    """
    if isinstance(exc, PromptTooLongError):
        return OpenAIError(400, str(exc), param=prompt_param, code="context_length_exceeded")
    if isinstance(exc, ToolCallingUnsupportedError):
        return OpenAIError(400, str(exc), param="tools", code="model_not_supported")
    if isinstance(exc, MessagesRefusedError):
        return OpenAIError(400, str(exc), param=prompt_param)
    if isinstance(exc, GrammarError):
        return OpenAIError(400, str(exc), param="response_format")
    if isinstance(exc, WrongModelKindError | ChatTemplateError):
        return OpenAIError(400, str(exc), param="model", code="model_not_supported")
    if isinstance(exc, ModelFolderError | ModelTooLargeError):
        return OpenAIError(
            503, f"model {model!r} cannot be served now: {exc}", code="model_unavailable"
        )
    if isinstance(exc, SkillSwitchError):
        return error_for(exc, param=prompt_param)
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without torch here
        return OpenAIError(
            503,
            f"the {device} ran out of memory serving model {model!r}; retry, send a shorter "
            "prompt or a smaller max_tokens, or lower inference.scheduler.max_batch_size",
            code="out_of_memory",
            headers={"Retry-After": "1"},
        )
    return exc


def submit(
    backend: LocalBackend,
    model: str,
    prompt: Prompt,
    params: GenerationParams,
    *,
    prompt_param: str,
    stream: bool,
) -> GenerationHandle:
    try:
        return backend.submit(model, prompt, params, stream=stream)
    except (SkillSwitchError, ValueError) as exc:
        mapped = backend_error(exc, device=backend.device, model=model, prompt_param=prompt_param)
        if mapped is exc:  # the backend's own checks of the input (an empty conversation)
            mapped = OpenAIError(400, str(exc), param=prompt_param)
        raise mapped from None
    except RuntimeError as exc:  # closed while shutting down
        raise OpenAIError(503, str(exc), code="service_unavailable") from None


class Generation:
    """A submitted generation seen from its HTTP request: backend errors become OpenAI errors,
    and the generation is cancelled as soon as its client goes away, so that no device time is
    spent on an answer nobody reads.

    A streamed answer waits for its first chunk before the response starts, so that a failure
    before the first token (a prompt that is too long, a model that cannot load) gets a proper
    error status rather than a 200 stream that breaks.
    """

    def __init__(
        self, handle: GenerationHandle, request: Request, backend: LocalBackend, prompt_param: str
    ) -> None:
        self._handle = handle
        self._request = request
        self._backend = backend
        self._prompt_param = prompt_param
        self._chunks = handle.stream()
        self._first: str | None = None

    async def result(self) -> GenerationResult:
        result: GenerationResult = await self._watching(self._handle.result)
        return result

    async def start_stream(self) -> None:
        """Wait for the first chunk (or the end of an empty answer, or the error)."""

        async def first() -> None:
            self._first = await anext(self._chunks, None)

        await self._watching(first)

    async def events(
        self,
        opening: list[dict[str, Any]],
        delta: Callable[[str], dict[str, Any] | None],
        closing: Callable[[GenerationResult], list[dict[str, Any]]],
    ) -> AsyncIterator[bytes]:
        """Server-sent events: ``opening``, one ``delta`` per text chunk (None: nothing to send
        yet), ``closing`` (made from the result), then ``[DONE]``. A failure after the response
        has started is sent as an OpenAI error event, which OpenAI clients raise."""
        try:
            for event in opening:
                yield sse(event)
            if self._first is not None:
                chunks = _prepended(self._first, self._chunks)
                async for chunk in chunks:
                    shown = delta(chunk)
                    if shown is not None:
                        yield sse(shown)
            for event in closing(self._handle.result_sync(timeout=0)):
                # The stream has ended, so the result is set: no need to await it.
                yield sse(event)
        except Exception as exc:
            error = self._error(exc)
            if not isinstance(error, OpenAIError):
                logger.error("a streamed generation failed", exc_info=exc)
                error = OpenAIError(
                    500, f"internal server error ({type(exc).__name__}); see the server log"
                )
            yield sse(error.body())
        finally:
            self.stop()
        yield sse("[DONE]")

    def stop(self) -> None:
        """Cancel the generation unless it has finished."""
        if not self._handle.done:
            self._handle.cancel()

    async def _watching(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work``; cancel the generation if the client disconnects meanwhile."""
        finished = False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._cancel_on_disconnect)
                value = await work()
                finished = True
                group.cancel_scope.cancel()
        except Exception as exc:
            cause = _single(exc)
            error = self._error(cause)
            if error is exc:
                raise
            raise error from (None if error is cause else cause)
        finally:
            if not finished:
                self.stop()
        return value

    async def _cancel_on_disconnect(self) -> None:
        while (await self._request.receive())["type"] != "http.disconnect":
            pass
        self.stop()

    def _error(self, exc: BaseException) -> BaseException:
        return backend_error(
            exc,
            device=self._backend.device,
            model=self._handle.model,
            prompt_param=self._prompt_param,
        )


class GenerationStream(StreamingResponse):
    """A streamed answer whose generation stops when the response ends, however it ends (the
    client leaving included), without waiting for the event generator to be collected."""

    def __init__(self, generation: Generation, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._generation.stop()


def _single(exc: BaseException) -> BaseException:
    """The one error inside (nested) exception groups, as anyio's task group raises it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _prepended(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for chunk in rest:
        yield chunk
