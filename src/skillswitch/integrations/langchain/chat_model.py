"""``SkillSwitchChatModel``: a LangChain chat model whose every call is routed by a ``Switch``.

>>> from skillswitch import Switch  # doctest: +SKIP
>>> model = SkillSwitchChatModel(switch=Switch.from_config("config.yaml"))  # doctest: +SKIP
>>> reply = model.invoke("convert 5 miles to km")  # doctest: +SKIP
>>> reply.response_metadata["skillswitch"]["experts"]  # doctest: +SKIP
[{'expert': 'calculator', 'skill': 'unit_conversion', 'reason': "serves skill ..."}]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, model_validator

from skillswitch.agents.messages import Message, TextDelta
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

    The switch runs in an event loop of its own (one per switch, in a daemon thread, shared by
    every model over it), so sync and async calls may be mixed from any thread or loop. Don't
    also drive the same ``Switch`` directly from another event loop: its experts' connections
    belong to the loop that opened them. ``close()`` / ``aclose()`` close the switch there.

    >>> model = SkillSwitchChatModel(switch=switch, skill="math")  # doctest: +SKIP
    >>> [chunk.content for chunk in model.stream("17 * 23")]  # doctest: +SKIP
    ['echo:', ' 17', ' *', ' 23', '']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    switch: Switch
    """The switch that routes and answers every call."""
    skill: str | None = None
    """Send every call to this skill's experts (the router is skipped)."""
    expert: str | None = None
    """Send every call to this expert alone (routing and recruitment are skipped)."""

    @model_validator(mode="after")
    def _check_pin(self) -> SkillSwitchChatModel:
        _check_route(self.switch, self._pin)
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
        return LangSmithParams(
            ls_provider=PROVIDER, ls_model_name=route.model_name, ls_model_type="chat"
        )

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        route = self._route(stop, kwargs)
        conversation = checked_conversation(messages)
        tools = _tools(kwargs)
        answer = loop_for(self.switch).call(lambda: self._run(conversation, route, tools))
        return _result(answer, route)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        route = self._route(stop, kwargs)
        conversation = checked_conversation(messages)
        tools = _tools(kwargs)
        answer = await loop_for(self.switch).acall(lambda: self._run(conversation, route, tools))
        return _result(answer, route)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        route = self._route(stop, kwargs)
        conversation = checked_conversation(messages)
        tools = _tools(kwargs)
        # LangChain reports each chunk to the callbacks (on_llm_new_token) itself.
        events = loop_for(self.switch).iterate(lambda: self._events(conversation, route, tools))
        for event in events:
            yield _chunk(event, route)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        route = self._route(stop, kwargs)
        conversation = checked_conversation(messages)
        tools = _tools(kwargs)
        events = loop_for(self.switch).aiterate(lambda: self._events(conversation, route, tools))
        async for event in events:
            yield _chunk(event, route)

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

    def _route(self, stop: list[str] | None, options: Mapping[str, Any]) -> _Route:
        """The call's route; its options are checked, never dropped."""
        if stop:
            raise ValueError(
                f"stop={stop!r}: SkillSwitchChatModel does not support stop sequences (its "
                "experts are chosen per request); leave stop out"
            )
        unknown = sorted(set(options) - {*_CALL_OPTIONS, *_TOOL_OPTIONS})
        if unknown:
            raise TypeError(
                f"SkillSwitchChatModel got unsupported call option(s) {', '.join(unknown)}; "
                "it takes skill=, expert=, tools= and tool_choice= (sampling is set per "
                "expert in the skillswitch config)"
            )
        if not any(name in options for name in _CALL_OPTIONS):
            return self._pin
        route = _Route(options.get("skill"), options.get("expert"))
        _check_route(self.switch, route)
        return route

    async def _run(
        self, conversation: list[Message], route: _Route, tools: Mapping[str, Any]
    ) -> Answer:
        return await self.switch.run(conversation, skill=route.skill, expert=route.expert, **tools)

    def _events(
        self, conversation: list[Message], route: _Route, tools: Mapping[str, Any]
    ) -> AsyncIterator[TextDelta | Answer]:
        return self.switch.stream(conversation, skill=route.skill, expert=route.expert, **tools)


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
