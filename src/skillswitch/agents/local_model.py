"""An expert served by skillswitch's own local inference backend (no HTTP hop)."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import ClientToolCall, offered_client_tools
from skillswitch.agents.messages import Message, Prices, TextDelta
from skillswitch.agents.response_format import ResponseFormat, with_format_instruction
from skillswitch.agents.sampling import requested_sampling
from skillswitch.agents.tool_loop import ModelTurn, ToolLoop
from skillswitch.exceptions import (
    ExpertError,
    ExpertRequestError,
    ExpertUnavailableError,
    GenerationCancelledError,
    GrammarError,
    PromptTooLongError,
    SkillSwitchError,
)

if TYPE_CHECKING:  # torch and transformers load only when a local expert is configured
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.grammar import OutputGrammar
    from skillswitch.inference.requests import GenerationParams, GenerationResult
    from skillswitch.inference.scheduler import GenerationHandle, Prompt
    from skillswitch.inference.tool_calls import ReadAnswer
    from skillswitch.inference.tool_formats import ToolCallFormat
    from skillswitch.tools.base import Tool
    from skillswitch.tools.sources import ToolSource

__all__ = ["LocalExpert", "format_grammar", "tool_grammar"]

T = TypeVar("T")


class LocalExpert:
    """Answers with ``model`` from a ``LocalBackend``; requests to the same model share batches.

    With ``tools`` the model may call them, for at most ``max_tool_steps`` rounds
    (``agents.tool_loop``); it is also offered the caller's tools of a request. Its calls are
    decoded in a grammar of the tools (``inference.tool_calls``), so they always name a tool
    and carry arguments its schema accepts; the model's chat template must show tools, in one
    of the formats skillswitch reads (``inference.tool_formats``: Hermes', as Qwen2.5's,
    Qwen3's and Hermes' templates write them; Llama 3's JSON; Mistral's two). ``stream`` sends
    each step's text as it is decoded.

    >>> expert = LocalExpert("coder", backend, "qwen-coder")  # doctest: +SKIP
    """

    calls_client_tools = True

    def __init__(
        self,
        name: str,
        backend: LocalBackend,
        model: str,
        *,
        params: GenerationParams | None = None,
        prices: Prices | None = None,
        tools: Sequence[Tool] | ToolSource | None = None,
        max_tool_steps: int = 5,
    ) -> None:
        from skillswitch.inference.requests import GenerationParams

        backend.registry.get(model)  # an unknown model fails here, with a did-you-mean
        self._name = name
        self._backend = backend
        self._model = model
        self._params = params or GenerationParams()
        self._prices = prices or Prices()
        self._tools = None if tools is None else ToolLoop(name, tools, max_tool_steps)
        self._caller_tools_only = ToolLoop(name, (), 1)

    @property
    def name(self) -> str:
        return self._name

    def params(self) -> GenerationParams:
        """The settings a generation uses now: the request's sampling (``requested_sampling()``)
        over this expert's own. A ``response_format`` becomes a grammar the answer is decoded
        in; keywords of its schema that the grammar engine cannot enforce are left to the
        switch, which checks every answer against the whole schema."""
        asked = requested_sampling()
        own = self._params
        form = asked.response_format
        return replace(
            own,
            max_new_tokens=_first(asked.max_tokens, own.max_new_tokens),
            temperature=_first(asked.temperature, own.temperature),
            top_p=_first(asked.top_p, own.top_p),
            seed=_first(asked.seed, own.seed),
            stop=_first(asked.stop, own.stop),
            grammar=own.grammar if form is None else format_grammar(form, strict=False),
        )

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        loop = self._tool_loop()
        if loop is not None:
            told = with_format_instruction(messages, requested_sampling().response_format)
            return await loop.run(told, self._step)
        started = time.perf_counter()
        handle = self._submit(messages, stream=False)
        try:
            result = await handle.result()
        except SkillSwitchError as exc:
            raise _expert_error(self._name, exc) from exc
        return self._reply(result, started)

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        loop = self._tool_loop()
        if loop is not None:  # each step's text as it is written, held back where a call may open
            told = with_format_instruction(messages, requested_sampling().response_format)
            async for item in loop.stream(told, self._streamed_step):
                yield item
            return
        started = time.perf_counter()
        async with contextlib.aclosing(self._decoded(self._submit(messages, stream=True))) as out:
            async for decoded in out:
                if isinstance(decoded, str):
                    yield TextDelta(decoded)
                else:
                    yield self._reply(decoded, started)

    def _tool_loop(self) -> ToolLoop | None:
        """The loop that runs tool calls, when this request has tools: the expert's own, or
        the caller's (a model without tools of its own may still call those)."""
        if self._tools is not None:
            return self._tools
        offered = offered_client_tools()
        if offered is not None and offered.choice.mode != "none":
            return self._caller_tools_only
        return None

    async def _step(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], choice: Any
    ) -> ModelTurn:
        """One answer of the tool loop: with tools, decoded in their grammar and read for
        calls."""
        from skillswitch.inference.tool_calls import ReadAnswer, read_tool_calls

        call_format, prompt, params = self._step_request(conversation, tools, choice)
        try:
            handle = self._backend.submit(self._model, prompt, params, stream=False)
            result = await handle.result()
        except (SkillSwitchError, ValueError, RuntimeError) as exc:
            raise _expert_error(self._name, exc) from exc
        if call_format is None:
            return self._turn(result, ReadAnswer(result.text, ()))
        return self._turn(result, read_tool_calls(result.text, call_format))

    async def _streamed_step(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], choice: Any
    ) -> AsyncGenerator[str | ModelTurn, None]:
        """``_step``, its text yielded as it is decoded (``ToolCallText`` holds back what may
        open a call)."""
        from skillswitch.inference.tool_calls import ReadAnswer, ToolCallText

        call_format, prompt, params = self._step_request(conversation, tools, choice)
        reader = None if call_format is None else ToolCallText(call_format)
        shown: list[str] = []
        try:
            handle = self._backend.submit(self._model, prompt, params, stream=True)
        except (SkillSwitchError, ValueError, RuntimeError) as exc:
            raise _expert_error(self._name, exc) from exc
        async with contextlib.aclosing(self._decoded(handle)) as out:
            async for item in out:
                if not isinstance(item, str):
                    rest, calls = ("", ()) if reader is None else reader.finish()
                    if rest:
                        shown.append(rest)
                        yield rest
                    yield self._turn(item, ReadAnswer("".join(shown), calls))
                elif piece := (item if reader is None else reader.feed(item)):
                    shown.append(piece)
                    yield piece

    async def _decoded(
        self, handle: GenerationHandle
    ) -> AsyncGenerator[str | GenerationResult, None]:
        """``handle``'s text as it is decoded, then its result; a reader that leaves (this
        generator closed early) cancels the generation."""
        try:
            async for chunk in handle.stream():
                yield chunk
            yield await handle.result()
        except SkillSwitchError as exc:
            raise _expert_error(self._name, exc) from exc
        finally:
            if not handle.done:  # the consumer stopped reading: stop generating
                handle.cancel()

    def _step_request(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], choice: Any
    ) -> tuple[ToolCallFormat | None, Prompt, GenerationParams]:
        """A step's call format (None: the step has no tools), prompt and settings."""
        from skillswitch.inference.requests import Conversation

        params = self.params()
        if not tools or choice == "none":
            return None, conversation, params
        call_format = self._backend.tool_call_format(self._model)
        form = requested_sampling().response_format
        grammar = tool_grammar(tools, choice, form, call_format=call_format.name)
        return (
            call_format,
            Conversation(conversation, tools=tools),
            replace(params, grammar=grammar),
        )

    def _turn(self, result: GenerationResult, read: ReadAnswer) -> ModelTurn:
        calls = tuple(
            ClientToolCall(f"call-{random.getrandbits(96):024x}", call.name, call.arguments)
            for call in read.calls
        )
        stopped = result.finish_reason == "stop"
        return ModelTurn(
            text=read.content or None,
            calls=calls,
            usage=self._prices.usage(result.prompt_tokens, result.completion_tokens),
            model=self._model,
            finish_reason="tool_calls" if calls and stopped else result.finish_reason,
        )

    def _submit(self, messages: Sequence[Message], *, stream: bool) -> GenerationHandle:
        try:
            # The grammar (params()) holds the answer to the form; the words say what to put in
            # it (the schema's fields), which no mask can.
            told = with_format_instruction(messages, requested_sampling().response_format)
            return self._backend.submit(
                self._model, [m.to_openai() for m in told], self.params(), stream=stream
            )
        except (SkillSwitchError, ValueError, RuntimeError) as exc:
            raise _expert_error(self._name, exc) from exc

    def _reply(self, result: GenerationResult, started: float) -> ExpertReply:
        return ExpertReply(
            expert=self._name,
            text=result.text,
            usage=self._prices.usage(result.prompt_tokens, result.completion_tokens),
            model=self._model,
            finish_reason=result.finish_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def format_grammar(asked: ResponseFormat, *, strict: bool) -> OutputGrammar:
    """The decoding grammar of a ``response_format``: any JSON object, or one its schema
    accepts. ``strict``: a schema keyword the engine cannot enforce is a ``GrammarError``
    (else it is ignored while decoding). Compiled once per distinct schema."""
    schema = None if asked.schema is None else json.dumps(asked.schema, sort_keys=True)
    return _compiled_grammar(schema, strict, asked.label)


@lru_cache(maxsize=256)
def _compiled_grammar(schema: str | None, strict: bool, label: str) -> OutputGrammar:
    from skillswitch.inference.grammar import json_grammar

    return json_grammar(None if schema is None else json.loads(schema), strict=strict, label=label)


def tool_grammar(
    tools: Sequence[Mapping[str, Any]],
    choice: Any,
    form: ResponseFormat | None,
    *,
    parallel: bool = True,
    strict_answer: bool = False,
    call_format: str = "hermes",
) -> OutputGrammar:
    """The decoding grammar of an answer that may call ``tools`` (OpenAI's shapes; ``strict``
    functions held to all their schema) as ``choice`` allows (``auto``, ``required`` or one
    named function), one call at most unless ``parallel``: else text, or ``form``'s object;
    calls written in ``call_format`` (a name in ``inference.tool_formats.FORMATS``). Compiled
    once per distinct request."""
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    answer = None if form is None else json.dumps(form.schema or {"type": "object"})
    return _compiled_tool_grammar(
        json.dumps(tools, sort_keys=True),
        str(named or choice),
        parallel,
        answer,
        strict_answer,
        call_format,
    )


@lru_cache(maxsize=256)
def _compiled_tool_grammar(
    tools: str,
    choice: str,
    parallel: bool,
    answer: str | None,
    strict_answer: bool,
    call_format: str,
) -> OutputGrammar:
    from skillswitch.inference.tool_calls import CallableFunction, tool_call_grammar
    from skillswitch.inference.tool_formats import FORMATS

    functions = [
        CallableFunction(
            tool["function"]["name"],
            tool["function"].get("parameters"),
            strict=tool["function"].get("strict") is True,
        )
        for tool in json.loads(tools)
    ]
    return tool_call_grammar(
        functions,
        choice=choice,
        parallel=parallel,
        answer=None if answer is None else json.loads(answer),
        strict_answer=strict_answer,
        call_format=FORMATS[call_format],
    )


def _first(asked: T | None, own: T) -> T:
    return own if asked is None else asked


def _expert_error(name: str, exc: Exception) -> ExpertError:
    if isinstance(exc, GenerationCancelledError):
        return ExpertUnavailableError(name, str(exc))
    if isinstance(exc, PromptTooLongError | GrammarError) or (
        isinstance(exc, ValueError) and not isinstance(exc, SkillSwitchError)
    ):  # the request's own problem (an empty conversation, a prompt over the context, a
        # response_format this model cannot be held to)
        return ExpertRequestError(name, str(exc))
    return ExpertError(name, str(exc))  # the configuration's or the backend's
