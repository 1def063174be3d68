"""``SkillSwitchChatModel``: a LangChain chat model whose every call is routed by a ``Switch``.

>>> from skillswitch import Switch  # doctest: +SKIP
>>> model = SkillSwitchChatModel(switch=Switch.from_config("config.yaml"))  # doctest: +SKIP
>>> reply = model.invoke("convert 5 miles to km")  # doctest: +SKIP
>>> reply.response_metadata["skillswitch"]["experts"]  # doctest: +SKIP
[{'expert': 'calculator', 'skill': 'unit_conversion', 'reason': "serves skill ..."}]
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from skillswitch.agents.messages import Message, TextDelta
from skillswitch.agents.sampling import SamplingSettings
from skillswitch.exceptions import RequestError
from skillswitch.integrations.langchain.loop import close_switch, loop_for
from skillswitch.integrations.langchain.messages import (
    PROVIDER,
    answer_chunk,
    answer_message,
)
from skillswitch.integrations.langchain.messages import conversation as checked_conversation
from skillswitch.switch import Switch
from skillswitch.trace import Answer

__all__ = ["SkillSwitchChatModel"]

SKILL_PREFIX = "skillswitch/"
_CALL_OPTIONS = ("skill", "expert")
_TOOL_OPTIONS = ("tools", "tool_choice")
_SAMPLING_OPTIONS = tuple(f.name for f in fields(SamplingSettings) if f.name != "stop")
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one call goes: routed (both None), a skill's experts, or one expert."""

    skill: str | None
    expert: str | None

    @property
    def model_name(self) -> str:
        """The name the HTTP API gives this route (``model`` of ``/v1/chat/completions``)."""
        if self.expert is not None:
            return self.expert
        return PROVIDER if self.skill is None else SKILL_PREFIX + self.skill


class SkillSwitchChatModel(BaseChatModel):
    """A ``BaseChatModel`` over a ``Switch``: each call is routed to the experts of its skills
    (or to ``skill``'s experts, or to ``expert`` alone, when pinned), and the ``AIMessage``
    carries the route: ``response_metadata["skillswitch"]`` is the trace
    (``Trace.to_dict()``), ``usage_metadata`` the tokens of every call the answer took,
    ``response_metadata["finish_reason"]`` the finish reason.

    Streaming sends the experts' text deltas as they come; the last chunk has no text and
    carries the metadata. A call may pin its own route: ``model.invoke(text, skill="math")``
    or ``expert="calculator"`` (replacing the model's own pin). Messages are text (system,
    human and AI messages) and tool use; other kinds raise ``ValueError``.

    ``bind_tools`` offers the caller's tools to the experts that can call tools (as
    ``Switch.run(tools=...)``): a call an expert asks for comes back in ``tool_calls``; send
    the ``ToolMessage`` with its result in the next call, which goes back to that expert.

    Sampling (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``) applies to every
    model that answers a call, as ``Switch.run(sampling=...)``'s does: set on the model, or per
    call (``invoke(text, temperature=0, stop=[...])``, ``bind(seed=7)``), the call's winning.
    ``with_structured_output(MyPydanticModel)`` asks for the answer in that JSON Schema
    (``response_format``) and returns the parsed object.

    The switch runs in an event loop of its own (one per switch, in a daemon thread, shared by
    every model over it), so sync and async calls may be mixed from any thread or loop. Don't
    also drive the same ``Switch`` directly from another event loop: its experts' connections
    belong to the loop that opened them. ``close()`` / ``aclose()`` close the switch there.

    >>> model = SkillSwitchChatModel(switch=switch, skill="math")  # doctest: +SKIP
    >>> [chunk.content for chunk in model.stream("17 * 23")]  # doctest: +SKIP
    ['echo:', ' 17', ' *', ' 23', '']
    """

    switch: Switch
    """The switch that routes and answers every call."""
    skill: str | None = None
    """Send every call to this skill's experts (the router is skipped)."""
    expert: str | None = None
    """Send every call to this expert alone (routing and recruitment are skipped)."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    """The most tokens of each model's reply (each expert's and the aggregator's)."""
    seed: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Strings that end each model's reply where they appear."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_pin(self) -> SkillSwitchChatModel:
        _check_route(self.switch, self._pin)
        _sampling(self._settings(None, {}))  # a bad value fails here, named
        return self

    @property
    def _llm_type(self) -> str:
        return PROVIDER

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "expert": self.expert,
            "experts": self.switch.expert_names,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # For tracing only: the call's options are checked (and refused) where it runs.
        pinned = any(name in kwargs for name in _CALL_OPTIONS)
        route = _Route(kwargs.get("skill"), kwargs.get("expert")) if pinned else self._pin
        params = LangSmithParams(
            ls_provider=PROVIDER, ls_model_name=route.model_name, ls_model_type="chat"
        )
        settings = self._settings(stop, kwargs)
        if isinstance(settings.get("temperature"), int | float):
            params["ls_temperature"] = settings["temperature"]
        if isinstance(settings.get("max_tokens"), int):
            params["ls_max_tokens"] = settings["max_tokens"]
        if settings.get("stop"):
            params["ls_stop"] = settings["stop"]
        return params

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | Mapping[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with ``tools`` offered on every call (LangChain tools, functions,
        pydantic models or OpenAI tool dicts). ``tool_choice``: ``auto``, ``none``,
        ``required`` (or ``any``), a tool's name, or ``True`` for the one tool given."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "json_mode", "function_calling"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """This model answering in ``schema``'s form, parsed: a pydantic class gives its
        instances, a JSON Schema or TypedDict gives dicts.

        ``method``: ``json_schema`` (the default) asks every model that answers for the schema
        (``response_format``; the switch checks the answer against it and fails the call with
        ``ResponseFormatError`` if it cannot be had); ``json_mode`` asks for any JSON object
        (the schema only parses it); ``function_calling`` offers the schema as a tool that an
        expert must call (needs an expert that can call tools). ``include_raw``: a dict with
        the ``raw`` message, the ``parsed`` value and any ``parsing_error``.
        """
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if kwargs:
            raise TypeError(
                f"with_structured_output got unsupported argument(s) {', '.join(sorted(kwargs))};"
                " it takes schema, include_raw, method and strict"
            )
        if method not in ("json_schema", "json_mode"):
            raise ValueError(
                f"method={method!r}; give 'json_schema', 'json_mode' or 'function_calling'"
            )
        pydantic_class = isinstance(schema, type) and issubclass(schema, BaseModel)
        response_format = (
            {"type": "json_object"}
            if method == "json_mode"
            else _json_schema_format(schema, strict=strict)
        )
        llm = self.bind(
            response_format=response_format,
            ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema) if pydantic_class else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [unparsed], exception_key="parsing_error"
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        answer = loop_for(self.switch).call(lambda: self._run(call))
        return _result(answer, call.route)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, kwargs)
        answer = await loop_for(self.switch).acall(lambda: self._run(call))
        return _result(answer, call.route)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        # LangChain reports each chunk to the callbacks (on_llm_new_token) itself.
        for event in loop_for(self.switch).iterate(lambda: self._events(call)):
            yield _chunk(event, call.route)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._call(messages, stop, kwargs)
        async for event in loop_for(self.switch).aiterate(lambda: self._events(call)):
            yield _chunk(event, call.route)

    def close(self) -> None:
        """Close the switch (its experts' connections, MCP servers, local backend) in the event
        loop where its calls ran, and stop that loop. A later call starts a new one."""
        close_switch(self.switch)

    async def aclose(self) -> None:
        """``close`` for async code."""
        await asyncio.to_thread(close_switch, self.switch)

    @property
    def _pin(self) -> _Route:
        return _Route(self.skill, self.expert)

    def _settings(self, stop: list[str] | None, options: Mapping[str, Any]) -> dict[str, Any]:
        """The sampling a call asks for: its own options (and ``stop``) over the model's."""
        own = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
        }
        settings = {name: value for name, value in own.items() if value is not None}
        settings.update({name: options[name] for name in _SAMPLING_OPTIONS if name in options})
        if stop:
            settings["stop"] = stop
        return settings

    def _call(
        self, messages: list[BaseMessage], stop: list[str] | None, options: Mapping[str, Any]
    ) -> _Call:
        """What one call asks for, checked before anything runs; no option is dropped."""
        unknown = sorted(set(options) - {*_CALL_OPTIONS, *_TOOL_OPTIONS, *_SAMPLING_OPTIONS})
        if unknown:
            raise TypeError(
                f"SkillSwitchChatModel got unsupported call option(s) {', '.join(unknown)}; "
                "it takes skill=, expert=, tools=, tool_choice=, stop= and the sampling "
                f"options {', '.join(f'{name}=' for name in _SAMPLING_OPTIONS)}"
            )
        sampling = _sampling(self._settings(stop, options))
        route = self._pin
        if any(name in options for name in _CALL_OPTIONS):
            route = _Route(options.get("skill"), options.get("expert"))
            _check_route(self.switch, route)
        return _Call(checked_conversation(messages), route, _tools(options), sampling)

    async def _run(self, call: _Call) -> Answer:
        return await self.switch.run(
            call.conversation,
            skill=call.route.skill,
            expert=call.route.expert,
            sampling=call.sampling,
            **call.tools,
        )

    def _events(self, call: _Call) -> AsyncIterator[TextDelta | Answer]:
        return self.switch.stream(
            call.conversation,
            skill=call.route.skill,
            expert=call.route.expert,
            sampling=call.sampling,
            **call.tools,
        )


@dataclass(frozen=True, slots=True)
class _Call:
    """One call: its conversation, route, the caller's tools and the sampling settings."""

    conversation: list[Message]
    route: _Route
    tools: Mapping[str, Any]
    sampling: SamplingSettings | None


def _sampling(settings: Mapping[str, Any]) -> SamplingSettings | None:
    """The settings as the switch takes them; a bad value is a ``ValueError`` naming it."""
    if not settings:
        return None
    try:
        return SamplingSettings(**settings)
    except RequestError as exc:
        raise ValueError(str(exc)) from None


def _json_schema_format(schema: dict[str, Any] | type, *, strict: bool | None) -> dict[str, Any]:
    """OpenAI's ``response_format`` for ``schema`` (a pydantic class, a TypedDict, a JSON
    Schema, or an OpenAI tool or function)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        name, body = schema.__name__, schema.model_json_schema()
    else:
        already = isinstance(schema, Mapping) and "type" in schema and "function" not in schema
        body = dict(schema) if already else convert_to_json_schema(schema)  # type: ignore[arg-type]
        name = str(body.get("title") or "output")
    spec: dict[str, Any] = {"name": _NOT_A_NAME.sub("_", name)[:64] or "output", "schema": body}
    if isinstance(body.get("description"), str):
        spec["description"] = body["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def _tools(options: Mapping[str, Any]) -> dict[str, Any]:
    """The call's ``tools`` and ``tool_choice`` for ``Switch.run`` (checked there)."""
    return {name: options[name] for name in _TOOL_OPTIONS if name in options}


def _tool_choice(
    choice: str | Mapping[str, Any] | bool, tools: Sequence[Mapping[str, Any]]
) -> str | Mapping[str, Any]:
    """LangChain's spellings of ``tool_choice`` in OpenAI's (as langchain-openai does)."""
    if choice is True:
        if len(tools) != 1:
            raise ValueError(
                f"tool_choice=True needs exactly one tool, got {len(tools)}; name the tool "
                "to call, or use 'required'"
            )
        return {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    if choice is False:
        return "none"
    if choice == "any":
        return "required"
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _check_route(switch: Switch, route: _Route) -> None:
    """Fail on a bad pin before anything runs, naming what exists."""
    if route.skill is not None and route.expert is not None:
        raise ValueError(
            f"skill={route.skill!r} and expert={route.expert!r} both pin the route; give one"
        )
    if route.skill is not None and route.skill not in switch.router.skills:
        raise ValueError(
            f"skill={route.skill!r} is not a skill of this switch; the skills are: "
            f"{', '.join(switch.router.skills)}"
        )
    if route.expert is not None and route.expert not in switch.expert_names:
        raise ValueError(
            f"expert={route.expert!r} is not an expert of this switch; the experts are: "
            f"{', '.join(switch.expert_names)}"
        )


def _result(answer: Answer, route: _Route) -> ChatResult:
    return ChatResult(
        generations=[ChatGeneration(message=answer_message(answer, route.model_name))]
    )


def _chunk(event: TextDelta | Answer, route: _Route) -> ChatGenerationChunk:
    if isinstance(event, TextDelta):
        return ChatGenerationChunk(message=AIMessageChunk(content=event.text))
    return ChatGenerationChunk(message=answer_chunk(event, route.model_name))
