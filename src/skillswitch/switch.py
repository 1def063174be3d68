"""``Switch``: request -> route -> recruit experts -> dispatch -> aggregate -> ``Answer``.

>>> switch = Switch.from_config("config.yaml")  # doctest: +SKIP
>>> answer = switch.run_sync("what is 15% of 80?")  # doctest: +SKIP
>>> answer.text, answer.trace.to_dict()["experts"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from skillswitch.agents.aggregate import Aggregation, aggregate
from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.dispatch import (
    Attempt,
    BreakerPolicy,
    Dispatch,
    Dispatcher,
    ExpertResult,
    RetryPolicy,
)
from skillswitch.agents.messages import Message, Prices, TextDelta, Usage, parse_messages
from skillswitch.agents.openai_chat import OpenAIChatExpert, SamplingSettings
from skillswitch.config import Config, default_config, environment, load_config
from skillswitch.config.models import DispatchConfig
from skillswitch.exceptions import ExpertError, NoExpertError, UnknownExpertError
from skillswitch.router import Router, RoutingDecision
from skillswitch.trace import Answer, Selection, Trace

__all__ = ["ExpertSpec", "Switch"]

Request = str | Sequence[Mapping[str, Any] | Message]


@dataclass(frozen=True)
class ExpertSpec:
    """An expert and the skills it serves (empty: every skill), with its fallbacks."""

    expert: Expert
    skills: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    timeout_s: float = 60.0


class Switch:
    """Routes each request to the experts of its skills and returns one answer with its trace."""

    def __init__(
        self,
        router: Router,
        experts: Sequence[ExpertSpec],
        *,
        settings: DispatchConfig | None = None,
        out_of_scope_reply: str = "Sorry, I can't help with that request.",
    ) -> None:
        self.router = router
        self.settings = settings or DispatchConfig()
        self._specs = {spec.expert.name: spec for spec in experts}
        self._order = [spec.expert.name for spec in experts]
        self._out_of_scope_reply = out_of_scope_reply
        s = self.settings
        self.dispatcher = Dispatcher(
            {name: spec.expert for name, spec in self._specs.items()},
            timeout_s={name: spec.timeout_s for name, spec in self._specs.items()},
            retry=RetryPolicy(s.retry_attempts, s.retry_base_delay_s, s.retry_max_delay_s),
            breaker=BreakerPolicy(s.breaker_failures, s.breaker_cooldown_s),
            fallbacks={
                name: spec.fallbacks for name, spec in self._specs.items() if spec.fallbacks
            },
        )
        if s.aggregator is not None and s.aggregator not in self._specs:
            raise UnknownExpertError(s.aggregator, sorted(self._specs))

    @classmethod
    def from_config(
        cls,
        source: str | Path | Config | None = None,
        *,
        overrides: Mapping[str, Expert] | None = None,
        cache_dir: Path | None = None,
    ) -> Switch:
        """Build from a config file, a ``Config``, or the embedded default (None).

        ``overrides`` replace configured experts by name, e.g. with ``TestExpert`` in tests.
        """
        config = (
            source
            if isinstance(source, Config)
            else default_config()
            if source is None
            else load_config(source)
        )
        replacements = dict(overrides or {})
        names = [expert.name for expert in config.experts]
        for name in replacements:
            if name not in names:
                raise UnknownExpertError(name, names)
        specs = []
        for index, declared in enumerate(config.experts):
            expert = replacements.get(declared.name) or OpenAIChatExpert(
                declared.name,
                str(declared.base_url),
                declared.model,
                api_key=environment.api_key(
                    declared.api_key_env, path=f"experts[{index}].api_key_env"
                ),
                timeout_s=declared.timeout_s,
                sampling=SamplingSettings(**declared.sampling.model_dump()),
                prices=Prices(**declared.prices.model_dump()),
            )
            specs.append(
                ExpertSpec(
                    expert,
                    tuple(declared.skills),
                    tuple(declared.fallbacks),
                    declared.timeout_s,
                )
            )
        return cls(
            Router.from_config(config, cache_dir=cache_dir),
            specs,
            settings=config.dispatch,
            out_of_scope_reply=config.out_of_scope.reply,
        )

    def route(self, request: str | bytes) -> RoutingDecision:
        """The routing decision alone (no expert is called)."""
        return self.router.route(request)

    def select(self, decision: RoutingDecision) -> tuple[Selection, ...]:
        """Experts for a decision: those serving its skills, best skill first, then experts
        that serve every skill (but not a skill-less aggregator); at most
        ``dispatch.max_experts``."""
        chosen: list[Selection] = []
        taken: set[str] = set()
        for scored in decision.skills:
            for name in self._order:
                if scored.skill in self._specs[name].skills and name not in taken:
                    taken.add(name)
                    reason = f"serves skill {scored.skill!r} (score {scored.score:.3f})"
                    chosen.append(Selection(name, scored.skill, reason))
        for name in self._order:
            # An aggregator without skills of its own only aggregates.
            if name == self.settings.aggregator and not self._specs[name].skills:
                continue
            if not self._specs[name].skills and name not in taken:
                taken.add(name)
                chosen.append(Selection(name, None, "serves every skill"))
        if not chosen:
            raise NoExpertError(decision.skill_names)
        return tuple(chosen[: self.settings.max_experts])

    async def run(self, request: Request) -> Answer:
        """Answer a text or an OpenAI-style message list."""
        started = time.perf_counter()
        messages = parse_messages(request)
        decision, route_ms = await self._route(messages)
        if decision.out_of_scope:
            return self._out_of_scope(decision, route_ms, started)
        selections = self.select(decision)
        dispatch = await self.dispatcher.dispatch(
            [s.expert for s in selections], messages, deadline_s=self.settings.deadline_s
        )
        dispatch.raise_if_empty()
        aggregation = await aggregate(
            messages,
            dispatch.replies,
            aggregator=self._aggregator(),
            rule=self.settings.answer_rule,
        )
        return self._answer(decision, selections, dispatch, aggregation, route_ms, started)

    def run_sync(self, request: Request) -> Answer:
        """``run`` for code without an event loop (connections are closed before it returns)."""

        async def once() -> Answer:
            try:
                return await self.run(request)
            finally:
                await self.aclose()

        return anyio.run(once)

    async def aclose(self) -> None:
        """Close every expert's connections."""
        for spec in self._specs.values():
            close = getattr(spec.expert, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> Switch:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def stream(self, request: Request) -> AsyncIterator[TextDelta | Answer]:
        """Text deltas, then the ``Answer``. One expert streams token by token (falling back
        to the dispatcher's retries when it fails before its first token); several experts
        are dispatched, aggregated, and their answer is sent as one delta."""
        started = time.perf_counter()
        messages = parse_messages(request)
        decision, route_ms = await self._route(messages)
        if decision.out_of_scope:
            answer = self._out_of_scope(decision, route_ms, started)
            yield TextDelta(answer.text)
            yield answer
            return
        selections = self.select(decision)
        if len(selections) == 1:
            name = selections[0].expert
            begin = time.perf_counter()
            sent = False
            try:
                async for event in self._specs[name].expert.stream(messages):
                    if isinstance(event, TextDelta):
                        sent = True
                        yield event
                    else:
                        dispatch = _streamed_dispatch(name, event, begin)
                        aggregation = await aggregate(messages, [event], aggregator=None)
                        yield self._answer(
                            decision, selections, dispatch, aggregation, route_ms, started
                        )
                        return
            except ExpertError:
                if sent:
                    raise  # text already went out; the caller must see the failure
        answer = await self.run(messages)
        yield TextDelta(answer.text)
        yield answer

    async def _route(self, messages: Sequence[Message]) -> tuple[RoutingDecision, float]:
        begin = time.perf_counter()
        last_user = messages[-1].content
        decision = await anyio.to_thread.run_sync(self.router.route, last_user)
        return decision, (time.perf_counter() - begin) * 1000

    def _aggregator(self) -> Expert | None:
        name = self.settings.aggregator
        return None if name is None else self._specs[name].expert

    def _out_of_scope(self, decision: RoutingDecision, route_ms: float, started: float) -> Answer:
        trace = Trace(
            decision, (), None, None, Usage(), route_ms, (time.perf_counter() - started) * 1000
        )
        return Answer(self._out_of_scope_reply, trace)

    def _answer(
        self,
        decision: RoutingDecision,
        selections: tuple[Selection, ...],
        dispatch: Dispatch,
        aggregation: Aggregation,
        route_ms: float,
        started: float,
    ) -> Answer:
        trace = Trace(
            decision,
            selections,
            dispatch,
            aggregation,
            dispatch.usage + aggregation.usage,
            route_ms,
            (time.perf_counter() - started) * 1000,
        )
        return Answer(aggregation.text, trace)


def _streamed_dispatch(name: str, reply: ExpertReply, begin: float) -> Dispatch:
    elapsed = (time.perf_counter() - begin) * 1000
    attempt = Attempt(name, 1, 0.0, elapsed, "ok")
    return Dispatch((ExpertResult(name, reply, None, (attempt,)),), elapsed, attempts=(attempt,))
