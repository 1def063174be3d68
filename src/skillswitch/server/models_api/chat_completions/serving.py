"""``POST /v1/chat/completions`` on the local backend: one choice, streamed or not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from skillswitch.agents.client_tools import ClientTools
from skillswitch.agents.local_model import format_grammar, tool_grammar
from skillswitch.agents.messages import typed_messages
from skillswitch.agents.response_format import parse_response_format
from skillswitch.exceptions import GrammarError, RequestError
from skillswitch.inference.requests import Conversation
from skillswitch.inference.tool_calls import ReadCall, ToolCallText, read_tool_calls
from skillswitch.inference.tool_formats import ToolCallFormat
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
from skillswitch.server.wire import check_n, client_tools_of, new_id, now

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.grammar import OutputGrammar
    from skillswitch.inference.requests import GenerationResult
    from skillswitch.inference.scheduler import Prompt

__all__ = ["ChatCompletionsServing"]


class ChatCompletionsServing:
    """Turns a chat completion request into a generation on the backend and its answer."""

    def __init__(self, backend: LocalBackend, *, default_max_tokens: int) -> None:
        self.backend = backend
        self.default_max_tokens = default_max_tokens

    async def create(self, body: ChatCompletionRequest, request: Request) -> Response:
        headers = ignored("chat.completions", body.ignored_fields())
        check_n(body.n)
        offered = client_tools_of(body)
        if offered is not None and offered.choice.mode == "none":
            offered = None  # the model answers in text, shown no tools
        if not body.messages:
            raise OpenAIError(400, "messages is empty; send at least one message", param="messages")
        messages = [message.to_backend() for message in body.messages]
        try:
            typed_messages(messages)
        except RequestError as exc:
            raise OpenAIError(400, str(exc), param="messages") from None
        params = body.params(body.max_new_tokens(self.default_max_tokens))
        call_format: ToolCallFormat | None = None
        if offered is None:
            params = replace(params, grammar=response_grammar(body.response_format))
            prompt: Prompt = messages
        else:
            call_format = self.backend.tool_call_format(body.model)
            params = replace(params, grammar=_tool_grammar(body, offered, call_format))
            prompt = Conversation(messages, tools=offered.to_openai())
        handle = submit(
            self.backend, body.model, prompt, params, prompt_param="messages", stream=body.stream
        )
        generation = Generation(handle, request, self.backend, "messages")
        if body.stream:
            await generation.start_stream()
            stream = _Stream(
                new_id("chatcmpl"),
                now(),
                body.model,
                body.include_usage(),
                None if call_format is None else ToolCallText(call_format),
            )
            events = generation.events(stream.opening(), stream.delta, stream.closing)
            response = GenerationStream(generation, events)
            response.headers.update(headers)
            return response
        result = await generation.result()
        finish_reason: str = result.finish_reason
        if call_format is None:
            message = ResponseMessage(content=result.text)
        else:
            answer = read_tool_calls(result.text, call_format)
            message = ResponseMessage(
                content=answer.content if answer.content or not answer.calls else None,
                tool_calls=[_tool_call(call) for call in answer.calls] or None,
            )
            finish_reason = _finish_reason(result, answer.calls)
        completion = ChatCompletion(
            id=new_id("chatcmpl"),
            created=now(),
            model=body.model,
            choices=[Choice(message=message, finish_reason=finish_reason)],
            usage=Usage.of(result),
        )
        return JSONResponse(completion.model_dump(mode="json", exclude_none=True), headers=headers)


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


def _tool_grammar(
    body: ChatCompletionRequest, offered: ClientTools, call_format: ToolCallFormat
) -> OutputGrammar:
    """The answer's grammar: calls held to the tools' schemas (OpenAI's ``strict`` functions
    held to all of it), and with ``tool_choice: auto`` either text (or the ``response_format``
    object) or calls."""
    try:
        form = parse_response_format(body.response_format)
        return tool_grammar(
            body.tools or [],
            offered.choice.to_openai(),
            form,
            parallel=body.parallel_tool_calls is not False,
            strict_answer=form is not None and form.strict is True,
            call_format=call_format.name,
        )
    except RequestError as exc:
        raise OpenAIError(400, str(exc), param="response_format") from None
    except GrammarError as exc:
        param = "response_format" if "response_format" in str(exc) else "tools"
        raise OpenAIError(400, str(exc), param=param) from None


def _tool_call(call: ReadCall) -> dict[str, Any]:
    return {
        "id": new_id("call"),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _finish_reason(result: GenerationResult, calls: Sequence[ReadCall]) -> str:
    return "tool_calls" if calls and result.finish_reason == "stop" else result.finish_reason


class _Stream:
    """The chat.completion.chunk events of one answer. With tools, text that may open a call
    is held back; the calls are sent whole, one delta each, when the answer ends."""

    def __init__(
        self,
        chunk_id: str,
        created: int,
        model: str,
        include_usage: bool,
        tool_text: ToolCallText | None,
    ) -> None:
        self.id, self.created, self.model = chunk_id, created, model
        self.include_usage = include_usage
        self.tool_text = tool_text

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )
        # With include_usage every chunk carries "usage": null until the last one (OpenAI).
        return chunk.model_dump(mode="json", exclude=None if self.include_usage else {"usage"})

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])]

    def delta(self, text: str) -> dict[str, Any] | None:
        if self.tool_text is not None:
            text = self.tool_text.feed(text)
            if not text:
                return None
        return self._chunk([ChunkChoice(delta=Delta(content=text))])

    def closing(self, result: GenerationResult) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        calls: tuple[ReadCall, ...] = ()
        if self.tool_text is not None:
            rest, calls = self.tool_text.finish()
            if rest:
                events.append(self._chunk([ChunkChoice(delta=Delta(content=rest))]))
            for index, call in enumerate(calls):
                delta = Delta(tool_calls=[{"index": index, **_tool_call(call)}])
                events.append(self._chunk([ChunkChoice(delta=delta)]))
        finish = ChunkChoice(delta=Delta(), finish_reason=_finish_reason(result, calls))
        events.append(self._chunk([finish]))
        if self.include_usage:
            events.append(self._chunk([], Usage.of(result)))
        return events
