"""``SkillSwitchChatModel``: a LangChain chat model whose every call is routed by a ``Switch``.

>>> from skillswitch import Switch  # doctest: +SKIP
>>> model = SkillSwitchChatModel(switch=Switch.from_config("config.yaml"))  # doctest: +SKIP
>>> reply = model.invoke("convert 5 miles to km")  # doctest: +SKIP
>>> reply.response_metadata["skillswitch"]["experts"]  # doctest: +SKIP
[{'expert': 'calculator', 'skill': 'unit_conversion', 'reason': "serves skill ..."}]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, model_validator

from skillswitch.agents.messages import Message, TextDelta
from skillswitch.integrations.langchain.loop import close_switch, loop_for
from skillswitch.integrations.langchain.messages import (
    PROVIDER,
    answer_chunk,
    answer_message,
    to_skillswitch_messages,
)
from skillswitch.switch import Switch
from skillswitch.trace import Answer

__all__ = ["SkillSwitchChatModel"]

SKILL_PREFIX = "skillswitch/"
_CALL_OPTIONS = ("skill", "expert")


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
    or ``expert="calculator"`` (replacing the model's own pin). Messages are text only:
    system, human and AI messages; other kinds raise ``ValueError``.

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        route = self._route(stop, kwargs)
        conversation = to_skillswitch_messages(messages)
        answer = loop_for(self.switch).call(lambda: self._run(conversation, route))
        return _result(answer, route)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        route = self._route(stop, kwargs)
        conversation = to_skillswitch_messages(messages)
        answer = await loop_for(self.switch).acall(lambda: self._run(conversation, route))
        return _result(answer, route)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        route = self._route(stop, kwargs)
        conversation = to_skillswitch_messages(messages)
        # LangChain reports each chunk to the callbacks (on_llm_new_token) itself.
        for event in loop_for(self.switch).iterate(lambda: self._events(conversation, route)):
            yield _chunk(event, route)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        route = self._route(stop, kwargs)
        conversation = to_skillswitch_messages(messages)
        events = loop_for(self.switch).aiterate(lambda: self._events(conversation, route))
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
        unknown = sorted(set(options) - set(_CALL_OPTIONS))
        if unknown:
            raise TypeError(
                f"SkillSwitchChatModel got unsupported call option(s) {', '.join(unknown)}; "
                "it takes skill= and expert= (sampling is set per expert in the skillswitch "
                "config)"
            )
        if not any(name in options for name in _CALL_OPTIONS):
            return self._pin
        route = _Route(options.get("skill"), options.get("expert"))
        _check_route(self.switch, route)
        return route

    async def _run(self, conversation: list[Message], route: _Route) -> Answer:
        return await self.switch.run(conversation, skill=route.skill, expert=route.expert)

    def _events(
        self, conversation: list[Message], route: _Route
    ) -> AsyncIterator[TextDelta | Answer]:
        return self.switch.stream(conversation, skill=route.skill, expert=route.expert)


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
