"""``Switch``: request -> route -> recruit experts -> dispatch -> aggregate -> ``Answer``.

>>> switch = Switch.from_config("config.yaml")  # doctest: +SKIP
>>> answer = switch.run_sync("what is 15% of 80?")  # doctest: +SKIP
>>> answer.text, answer.trace.to_dict()["experts"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
import anyio.to_thread

from skillswitch.agents.aggregate import (
    Aggregation,
    AnswerScorer,
    Synthesis,
    aggregate,
    extract_answer,
    settle,
)
from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.client_tools import (
    ClientTools,
    client_tools,
    enter_client_tools,
    leave_client_tools,
    parse_client_tools,
)
from skillswitch.agents.dispatch import (
    BreakerPolicy,
    Dispatch,
    Dispatcher,
    RetryPolicy,
)
from skillswitch.agents.keywords import extract_keywords
from skillswitch.agents.messages import (
    Message,
    TextDelta,
    Usage,
    last_user_text,
    parse_messages,
)
from skillswitch.agents.sampling import (
    SamplingSettings,
    enter_request_sampling,
    leave_request_sampling,
    parse_sampling,
    request_sampling,
)
from skillswitch.agents.turns import TurnMemory, TurnRecord
from skillswitch.answer_format import in_format, out_of_scope_error
from skillswitch.assembly import ExpertSpec, Recruitment, build_expert, build_recruitment
from skillswitch.config import Config, default_config, environment, load_config
from skillswitch.config.models import (
    DispatchConfig,
    LocalExpertConfig,
)
from skillswitch.coverage import unanswered_note
from skillswitch.exceptions import (
    ConfigError,
    ExpertsFailedError,
    NoExpertError,
    RequestError,
    ResponseFormatError,
    UnknownExpertError,
)
from skillswitch.router import Router, RoutingDecision
from skillswitch.router.decision import RoutingTiming, SkillScore
from skillswitch.router.profiles import log_odds
from skillswitch.router.recruitment import stage_settled
from skillswitch.skill_fallback import all_declined, next_skill_experts
from skillswitch.tools.base import ToolSpec
from skillswitch.tools.sources import (
    ToolPolicy,
    enter_tool_policy,
    leave_tool_policy,
    tool_policy,
)
from skillswitch.trace import Answer, Routed, Selection, SkillBasis, Trace

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.router.encoders import Encoder
    from skillswitch.tools.finder import ToolFinder
    from skillswitch.tools.hub import ToolHub

__all__ = ["ExpertSpec", "Recruitment", "Switch"]

Request = str | Sequence[Mapping[str, Any] | Message]
ClientToolsArg = Sequence[Mapping[str, Any] | ToolSpec] | None
SamplingArg = SamplingSettings | Mapping[str, Any] | None

# Votes are weighted by log(p (L - 1) / (1 - p)) for an expert of expected accuracy p among L
# answer options; L = 4 (a typical multiple-choice question), and every answer keeps a small
# weight so a weak expert still breaks ties.
VOTE_OPTIONS = 4
MIN_VOTE_WEIGHT = 0.05


class Switch:
    """Routes each request to the experts of its skills and returns one answer with its trace.

    With a ``recruitment`` the experts are recruited from profiles (competence on the request's
    skills x global strength, cost-aware); without one, by the skills they declare.
    """

    def __init__(
        self,
        router: Router,
        experts: Sequence[ExpertSpec],
        *,
        settings: DispatchConfig | None = None,
        out_of_scope_reply: str = "Sorry, I can't help with that request.",
        recruitment: Recruitment | None = None,
        hub: ToolHub | None = None,
        tool_finder: ToolFinder | None = None,
        allow_destructive: Mapping[str, Sequence[str]] | None = None,
        skill_descriptions: Mapping[str, str] | None = None,
        backend: LocalBackend | None = None,
    ) -> None:
        """``hub``: the upstream MCP servers (closed by ``aclose``); ``tool_finder``: retrieval
        over their tools. ``allow_destructive``: skill -> globs of MCP tools its requests may
        call though they declare destructive effects. ``backend``: the local inference backend
        of ``kind: local`` experts (closed by ``aclose``)."""
        self.router = router
        self.hub = hub
        self.backend = backend
        self.tool_finder = tool_finder
        self.skill_descriptions = dict(skill_descriptions or {})
        self._allow_destructive = {k: tuple(v) for k, v in (allow_destructive or {}).items()}
        self.settings = settings or DispatchConfig()
        self.recruitment = recruitment
        self._specs = {spec.expert.name: spec for spec in experts}
        self._order = [spec.expert.name for spec in experts]
        self._out_of_scope_reply = out_of_scope_reply
        self.turns = TurnMemory()
        keyword_expert = None if recruitment is None else recruitment.keyword_expert
        if keyword_expert is not None and keyword_expert not in self._specs:
            raise UnknownExpertError(keyword_expert, sorted(self._specs))
        if self.settings.combine != "synthesise" and recruitment is None:
            raise ValueError(f"combine={self.settings.combine!r} needs a recruitment (profiles)")
        if self.settings.combine == "learned" and (
            recruitment is None or recruitment.combiner is None
        ):
            raise ConfigError.single(
                "dispatch.combine",
                "'learned' needs profiles with a combiner: run skillswitch fit profiles with "
                "--predictions (each expert's answers), or use 'vote'",
            )
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
        self._aggregator_name = s.aggregator
        if s.aggregator is None and recruitment is not None:
            chosen = recruitment.profiles.aggregator
            # The aggregator picked on validation data, when it is one of our experts.
            self._aggregator_name = chosen if chosen in self._specs else None

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
        if source is not None and not isinstance(source, (str, Path, Config)):
            raise TypeError(
                f"source is a {type(source).__name__}; give a config file's path, a Config "
                "(skillswitch.config.parse_config(text) reads YAML text), or None for the "
                "embedded default"
            )
        config = (
            source
            if isinstance(source, Config)
            else default_config()
            if source is None
            else load_config(source)
        )
        replacements = dict(overrides or {})
        names = [expert.name for expert in config.experts]
        for name, replacement in replacements.items():
            if name not in names:
                raise UnknownExpertError(name, names)
            if not all(callable(getattr(replacement, a, None)) for a in ("answer", "stream")):
                raise TypeError(
                    f"overrides[{name!r}] is a {type(replacement).__name__}, not an expert (it "
                    "needs async answer() and stream(); e.g. TestExpert or FunctionExpert)"
                )
        router = Router.from_config(config, cache_dir=cache_dir)
        hub = finder = None
        if config.tools.servers:
            from skillswitch.router.encoders import tool_retrieval_encoder
            from skillswitch.tools.configured import build_hub
            from skillswitch.tools.finder import ToolFinder
            from skillswitch.tools.retrieval import DEFAULT_THRESHOLD, RetrievalSettings

            retrieval = config.tools.retrieval
            make_encoder: Callable[[], Encoder]
            if retrieval.encoder is not None:
                from skillswitch.tools.fitting import fitted_settings, load_tool_encoder

                # checked before a server starts
                settings = fitted_settings(retrieval.encoder, threshold=retrieval.threshold)
                make_encoder = functools.partial(load_tool_encoder, retrieval.encoder)
            else:
                threshold = retrieval.threshold
                settings = RetrievalSettings(
                    threshold=DEFAULT_THRESHOLD if threshold is None else threshold
                )
                make_encoder = functools.partial(
                    tool_retrieval_encoder, router.encoder, config.router.encoder
                )
            finder = ToolFinder(make_encoder, settings)
            hub = build_hub(
                config.tools.servers, environment.cache_dir(cache_dir or config.router.cache_dir)
            )
        backend = None
        if any(
            isinstance(e, LocalExpertConfig) and e.name not in replacements for e in config.experts
        ):
            from skillswitch.inference.configured import build_backend

            backend = build_backend(config.inference)
        specs = []
        for index, declared in enumerate(config.experts):
            expert = replacements.get(declared.name) or build_expert(
                declared, index, hub, finder, config.tools.retrieval.k, backend
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
            router,
            specs,
            settings=config.dispatch,
            out_of_scope_reply=config.out_of_scope.reply,
            recruitment=build_recruitment(config.recruitment, router, specs, config.experts),
            hub=hub,
            tool_finder=finder,
            allow_destructive={s.name: s.allow_destructive for s in config.skills},
            skill_descriptions={s.name: s.description for s in config.skills},
            backend=backend,
        )

    def route(self, request: str | bytes) -> RoutingDecision:
        """The routing decision alone (no expert is called)."""
        return self.router.route(request)

    @property
    def expert_names(self) -> list[str]:
        return list(self._order)

    def experts_for(self, skill: str) -> list[str]:
        """The experts that serve ``skill`` by declaration (or by profile, with recruitment)."""
        if self.recruitment is not None:
            profiled = self.recruitment.profiles
            return [name for name in self._order if profiled.has_expert(name)]
        return [
            name
            for name in self._order
            if skill in self._specs[name].skills
            or (not self._specs[name].skills and name != self.settings.aggregator)
        ]

    def select(
        self, decision: RoutingDecision, weights: Mapping[str, float] | None = None
    ) -> tuple[Selection, ...]:
        """Experts for a decision.

        With a recruitment: recruited on ``weights`` (profiled skill -> weight; default the
        decision's skill scores). Otherwise those serving its skills, best skill first, then
        experts that serve every skill (but not a skill-less aggregator); at most
        ``dispatch.max_experts``."""
        if self.recruitment is not None:
            basis = weights if weights is not None else _router_weights(decision)
            recruits = self.recruitment.recruiter.recruit(basis)
            skill = max(basis, key=lambda k: basis[k]) if basis else None
            return tuple(Selection(r.expert, skill, r.reason) for r in recruits)
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

    async def run(
        self,
        request: Request,
        *,
        skill: str | None = None,
        expert: str | None = None,
        tools: ClientToolsArg = None,
        tool_choice: Any = None,
        sampling: SamplingArg = None,
    ) -> Answer:
        """Answer a text or an OpenAI-style message list.

        ``skill`` skips the router: the request goes to that skill's experts as if the router
        had chosen it (score 1). ``expert`` skips routing and recruitment: that expert alone
        answers. The trace's decision says so (classifier ``forced`` or ``direct``).

        ``tools`` and ``tool_choice`` (OpenAI's shapes): the caller's tools, offered to the
        experts that can call tools. When one asks for them, ``answer.tool_calls`` holds the
        calls for the caller to run; the next request sends the conversation with their
        results as ``tool`` messages and goes back to that expert. A ``tool_choice`` that
        requires a call needs an expert that can call tools.

        ``sampling`` (``SamplingSettings``, or a mapping of OpenAI's names: ``temperature``,
        ``top_p``, ``max_tokens``, ``seed``, ``stop``): applies to every model call that
        answers the request, the experts' and the aggregator's, over each expert's own
        settings. Experts that do not sample (tools, fakes) are unaffected. Its
        ``response_format`` (OpenAI's ``{"type": "json_object"}`` or ``{"type": "json_schema",
        ...}``) is asked of every model likewise, and the answer's text is then that JSON: one
        not in the form is restated by the aggregator, else ``ResponseFormatError``.

        >>> answer = await switch.run("17 * 23", skill="math")  # doctest: +SKIP
        >>> answer.trace.decision.skill_names  # doctest: +SKIP
        ('math',)
        """
        started = time.perf_counter()
        messages = parse_messages(request)
        offered = parse_client_tools(tools, tool_choice)
        asked = parse_sampling(sampling)
        decision, route_ms = await self._decide(messages, skill, expert)
        state = _RequestState(messages, decision, offered, asked, route_ms, started)
        if decision.out_of_scope:
            return self._out_of_scope(state)
        chosen = await self._choose(messages, decision, skill, expert, offered)
        return await self._answer_chosen(state, chosen)

    async def _answer_chosen(self, state: _RequestState, chosen: _Chosen) -> Answer:
        """``run`` from the experts chosen: their replies, made one answer (in the form the
        sampling's ``response_format`` asks for, when it asks for one)."""
        dispatch, basis, selections, last = await self._answered(state, chosen)
        settled = self._settle(state.messages, dispatch, basis)
        aggregation = (
            await self._synthesise(state, settled) if isinstance(settled, Synthesis) else settled
        )
        answered = functools.partial(
            self._answer,
            state,
            selections,
            dispatch,
            basis=basis,
            extra_usage=chosen.extraction_usage,
        )
        try:
            aggregation = await self._in_format(state, aggregation, dispatch)
        except ResponseFormatError as failed:
            failed.trace = answered(aggregation, remember=False).trace
            raise
        if state.sampling.response_format is None:  # a note after JSON would break it
            note = self._unanswered(state.decision, last, dispatch)
            aggregation = self._noted(aggregation, note)
        return answered(aggregation)

    async def _in_format(
        self, state: _RequestState, aggregation: Aggregation, dispatch: Dispatch
    ) -> Aggregation:
        """The answer in the form the request's ``response_format`` asks for
        (``answer_format.in_format``: restated by the aggregator when it is not)."""
        if state.sampling.response_format is None:
            return aggregation
        name = self._aggregator_name

        async def restate(prompt: Sequence[Message]) -> ExpertReply | str:
            assert name is not None
            with request_sampling(state.sampling):
                asked = await self.dispatcher.dispatch(
                    [name], list(prompt), deadline_s=self._time_left(state.started)
                )
            return asked.replies[-1] if asked.replies else _failures(asked)

        if aggregation.mode in ("synthesised", "formatted"):
            author = f"the aggregator {name}"
        else:  # the reply whose text is the answer (the best-ranked one when none is)
            author = next(
                (r.expert for r in dispatch.replies if r.text == aggregation.text),
                dispatch.replies[0].expert,
            )
        return await in_format(
            aggregation,
            state.messages,
            state.sampling.response_format,
            author=author,
            aggregator=name,
            restate=restate if name is not None else None,
        )

    async def _choose(
        self,
        messages: Sequence[Message],
        decision: RoutingDecision,
        skill: str | None,
        expert: str | None,
        offered: ClientTools | None,
    ) -> _Chosen:
        """The experts to ask (named, kept from the previous turn, or recruited) and the basis
        of their recruitment."""
        if skill is None and expert is None:
            basis, extraction_usage = await self._basis(decision, messages)
        else:  # pinned by the caller: no keyword extraction to second-guess it
            basis = None
            if self.recruitment is not None and expert is None:
                note = "skill named by the caller"
                basis = SkillBasis("router", _router_weights(decision), note=note)
            extraction_usage = Usage()
        named = self._direct(expert) or self._kept(decision, messages)
        recruited = named is None and self.recruitment is not None
        by_skill = named is None and self.recruitment is None and skill is None
        tried = decision.skill_names
        unserved = None
        try:
            selections = named or self.select(decision, None if basis is None else basis.weights)
        except NoExpertError as exc:
            skills = ", ".join(repr(name) for name in decision.skill_names)
            found = self._next_skill(decision, tried, (), f"no expert serves {skills}", by_skill)
            if found is None:
                raise
            fallback, selections = found
            tried, unserved = (*tried, fallback), exc
        self._check_tool_callers(selections, offered)
        return _Chosen(selections, basis, extraction_usage, recruited, by_skill, tried, unserved)

    def _next_skill(
        self,
        decision: RoutingDecision,
        tried: Sequence[str],
        asked: Collection[str],
        why: str,
        by_skill: bool,
    ) -> tuple[str, tuple[Selection, ...]] | None:
        """The router's next candidate skill with experts not yet asked, while fallbacks are
        left (``dispatch.skill_fallbacks``), and its experts."""
        used = len(tried) - len(decision.skill_names)
        if not by_skill or used >= self.settings.skill_fallbacks:
            return None
        return next_skill_experts(
            decision, tried, asked, self._declaring, why, most=self.settings.max_experts
        )

    def _declaring(self, skill: str) -> list[str]:
        """The experts that declare ``skill`` (those serving every skill were asked already)."""
        return [name for name in self._order if skill in self._specs[name].skills]

    async def _gather(
        self, state: _RequestState, chosen: _Chosen
    ) -> tuple[Dispatch, SkillBasis | None, tuple[Selection, ...]]:
        """Every chosen expert's reply or error (in stages when recruitment cascades). The
        selections come back as asked: a cascade whose first stage disagreed widens with
        tie-breakers."""
        names = [s.expert for s in chosen.selections]
        selections = chosen.selections
        widen = None
        if chosen.recruited and self._widens(chosen.basis):
            assert chosen.basis is not None
            weights = chosen.basis.weights

            async def widen(asked: Sequence[str], more: int) -> list[str]:
                nonlocal selections
                added = await self._tie_breakers(state.messages, weights, asked, more)
                selections = (*selections[: len(asked)], *added)
                return [s.expert for s in added]

        with (
            tool_policy(self.tool_policy(state.decision)),
            client_tools(state.offered),
            request_sampling(state.sampling),
        ):
            dispatch, stages = await self._dispatch_in_stages(names, state.messages, widen)
        basis = chosen.basis
        if basis is not None and self._stages(names):
            basis = replace(basis, stages=stages)
        return dispatch, basis, selections

    async def _answered(
        self, state: _RequestState, chosen: _Chosen, earlier: Dispatch | None = None
    ) -> tuple[Dispatch, SkillBasis | None, tuple[Selection, ...], tuple[Selection, ...]]:
        """``_gather`` (unless ``earlier`` is the chosen experts' dispatch already); while every
        expert asked declined, the experts of the router's next candidate skill. The dispatch
        of every expert asked, the basis, every selection, and the last skill's selections.
        Raises ``ExpertsFailedError`` with the trace when none answered (the ``NoExpertError``
        when no expert serves the routed skills and no fallback answered)."""
        if earlier is None:
            dispatch, basis, selections = await self._gather(state, chosen)
        else:
            dispatch, basis, selections = earlier, chosen.basis, chosen.selections
        last, tried = selections, chosen.tried
        while not dispatch.replies and all_declined(dispatch):
            declined = ", ".join(dict.fromkeys(r.expert for r in dispatch.results))
            asked = {r.expert for r in dispatch.results}
            why = f"{declined} declined it"
            found = self._next_skill(state.decision, tried, asked, why, chosen.by_skill)
            if found is None:
                break
            fallback, more = found
            tried = (*tried, fallback)
            try:
                self._check_tool_callers(more, state.offered)
            except RequestError:
                continue  # a call of the caller's tools is required, and these cannot make it
            later, _, _ = await self._gather(state, _Chosen(more, None, Usage()))
            dispatch, selections, last = dispatch.merged(later), (*selections, *more), more
        if not dispatch.replies and chosen.unserved is not None:
            raise chosen.unserved  # names the skills to add an expert for: clearer than declines
        chosen = replace(chosen, selections=selections)
        self._raise_if_empty(state, dispatch, chosen)
        return dispatch, basis, selections, last

    def _widens(self, basis: SkillBasis | None) -> bool:
        """Whether a disagreeing first stage widens by tie-break competence (schema 2
        profiles with answers), rather than with the next recruits."""
        recruitment = self.recruitment
        return (
            basis is not None
            and recruitment is not None
            and bool(recruitment.cascade)
            and recruitment.profiles.tiebreak is not None
        )

    async def _tie_breakers(
        self,
        messages: Sequence[Message],
        weights: Mapping[str, float],
        asked: Sequence[str],
        more: int,
    ) -> tuple[Selection, ...]:
        assert self.recruitment is not None
        vector = None
        if self.recruitment.profiles.neighbours is not None:
            text = last_user_text(messages)
            vector = (await anyio.to_thread.run_sync(self.router.encoder.encode, [text]))[0]
        recruits = self.recruitment.recruiter.widen(weights, asked, k=more, vector=vector)
        skill = max(weights, key=lambda k: weights[k]) if weights else None
        return tuple(Selection(r.expert, skill, r.reason) for r in recruits)

    @staticmethod
    def _raise_if_empty(state: _RequestState, dispatch: Dispatch, chosen: _Chosen) -> None:
        """``ExpertsFailedError``, carrying the trace of every attempt, when no expert answered."""
        try:
            dispatch.raise_if_empty()
        except ExpertsFailedError as failed:
            failed.trace = Trace(
                state.decision,
                chosen.selections,
                dispatch,
                None,
                dispatch.usage + chosen.extraction_usage,
                state.route_ms,
                state.elapsed_ms(),
                chosen.basis,
            )
            raise

    def _settle(
        self, messages: Sequence[Message], dispatch: Dispatch, basis: SkillBasis | None
    ) -> Aggregation | Synthesis:
        return settle(
            messages,
            dispatch.replies,
            rule=self.settings.answer_rule,
            method=self.settings.combine,
            weights=self._vote_weights(dispatch, basis),
            scorer=self._scorer(dispatch, basis),
        )

    async def _synthesise(self, state: _RequestState, synthesis: Synthesis) -> Aggregation:
        """The aggregator's answer, under the dispatcher's rules (timeout, retries, breaker,
        fallbacks) within what is left of the request's deadline."""
        name = self._aggregator_name
        if name is None:
            return synthesis.failed("no aggregator")
        with request_sampling(state.sampling):
            dispatch = await self.dispatcher.dispatch(
                [name], list(synthesis.prompt), deadline_s=self._time_left(state.started)
            )
        if dispatch.replies:
            return synthesis.synthesised(dispatch.replies[-1])
        return synthesis.failed(_failures(dispatch))

    async def _synthesise_stream(
        self, state: _RequestState, synthesis: Synthesis
    ) -> AsyncIterator[TextDelta | Aggregation]:
        """``_synthesise``, the aggregator's text streamed as it comes (the best-ranked reply
        in one delta when it fails before its first token; after it, its ``ExpertError``)."""
        name = self._aggregator_name
        if name is None:
            yield TextDelta(synthesis.first)
            yield synthesis.failed("no aggregator")
            return
        dispatch: Dispatch | None = None
        asking = enter_request_sampling(state.sampling)
        try:
            async for event in self.dispatcher.stream(
                name, list(synthesis.prompt), deadline_s=self._time_left(state.started)
            ):
                if isinstance(event, TextDelta):
                    yield event
                else:
                    dispatch = event
        finally:
            leave_request_sampling(asking)
        assert dispatch is not None
        if dispatch.replies:
            yield synthesis.synthesised(dispatch.replies[-1])
            return
        yield TextDelta(synthesis.first)
        yield synthesis.failed(_failures(dispatch))

    def _time_left(self, started: float) -> float:
        return max(self.settings.deadline_s - (time.perf_counter() - started), 0.001)

    async def _decide(
        self, messages: Sequence[Message], skill: str | None, expert: str | None
    ) -> tuple[RoutingDecision, float]:
        """The router's decision, or the one the caller pinned with ``skill`` or ``expert``."""
        if skill is None and expert is None:
            return await self._route(messages)
        if skill is not None and expert is not None:
            raise RequestError(
                f"give skill= or expert=, not both (skill={skill!r}, expert={expert!r})"
            )
        if expert is not None:
            if expert not in self._specs:
                raise UnknownExpertError(expert, self._order)
            # A skill-less expert serves every skill.
            skills = self._specs[expert].skills or self.router.skills
            return self._pinned(skills, "direct"), 0.0
        assert skill is not None
        if skill not in self.router.skills:
            raise RequestError(
                f"unknown skill {skill!r}; the skills are: {', '.join(self.router.skills)}"
            )
        return self._pinned((skill,), "forced"), 0.0

    def _pinned(self, skills: Sequence[str], classifier: str) -> RoutingDecision:
        scores = tuple(SkillScore(name, 1.0) for name in skills)
        return RoutingDecision(
            skills=scores,
            candidates=scores,
            out_of_scope=False,
            out_of_scope_label=self.router.out_of_scope_label,
            confidence=1.0,
            threshold=self.router.threshold,
            encoder="none",
            classifier=classifier,
            timing=RoutingTiming(0.0, 0.0, 0.0),
        )

    def _remember(
        self,
        messages: Sequence[Message],
        decision: RoutingDecision,
        selections: Sequence[Selection],
        replies: Sequence[ExpertReply],
        aggregation: Aggregation,
    ) -> None:
        """Remember the turn; one that asks for the caller's tools resumes with the expert
        that asked."""
        experts = tuple(s.expert for s in selections)
        if aggregation.tool_calls:
            experts = tuple(r.expert for r in replies if r.client_tool_calls)[:1]
        self.turns.remember(
            messages,
            aggregation.text,
            TurnRecord(decision.skill_names, experts),
            aggregation.tool_calls,
        )

    def _check_tool_callers(
        self, selections: Sequence[Selection], offered: ClientTools | None
    ) -> None:
        """A ``tool_choice`` that requires a call needs an expert that can make it."""
        if offered is None or not offered.choice.requires_call:
            return
        if any(self._calls_client_tools(s.expert) for s in selections):
            return
        able = [name for name in self._order if self._calls_client_tools(name)]
        chosen = ", ".join(s.expert for s in selections)
        raise RequestError(
            f"tool_choice requires a tool call, but the experts chosen for this request "
            f"({chosen}) cannot call the caller's tools; "
            + (
                f"name one that can ({', '.join(able[:8])}) or pin its skill"
                if able
                else "no configured expert can (OpenAI-compatible chat experts can)"
            )
        )

    def _calls_client_tools(self, name: str) -> bool:
        return bool(getattr(self._specs[name].expert, "calls_client_tools", False))

    def _direct(self, expert: str | None) -> tuple[Selection, ...] | None:
        if expert is None:
            return None
        return (Selection(expert, None, "named by the caller; routing bypassed"),)

    def _kept(
        self, decision: RoutingDecision, messages: Sequence[Message]
    ) -> tuple[Selection, ...] | None:
        """The previous turn's experts when this request follows it with unchanged skills, or
        brings the results of the tools it asked the caller to run."""
        previous = self.turns.previous(messages)
        resumed = messages[-1].role == "tool"
        if previous is None or not decision.skills:
            return None
        if not resumed and decision.skills[0].skill not in previous.skills:
            return None
        available = [name for name in previous.experts if name in self._specs]
        if not available:
            return None
        skill = decision.skills[0].skill
        reason = (
            "asked the caller to run its tools; resumes with their results"
            if resumed
            else f"kept from the previous turn (skill {skill!r} unchanged)"
        )
        return tuple(Selection(name, skill, reason) for name in available)

    async def _basis(
        self, decision: RoutingDecision, messages: Sequence[Message]
    ) -> tuple[SkillBasis | None, Usage]:
        """What recruitment works on: keywords from the extractor when configured and
        matched, else the router's skills."""
        recruitment = self.recruitment
        if recruitment is None:
            return None, Usage()
        router_basis = SkillBasis("router", _router_weights(decision))
        if recruitment.keyword_expert is None or recruitment.keywords is None:
            return router_basis, Usage()
        extraction = await extract_keywords(
            self._specs[recruitment.keyword_expert].expert,
            last_user_text(messages),
            samples=recruitment.keyword_samples,
            min_count=recruitment.keyword_min_count,
        )
        matched = recruitment.keywords.match(extraction.keywords)
        if not matched:
            note = (
                "no extracted keyword matched a profiled keyword; recruited on the router's skills"
                if extraction.keywords
                else "the keyword extractor gave no recurring keywords; recruited on the "
                "router's skills"
            )
            if extraction.errors:
                note += f" ({len(extraction.errors)} extraction sample(s) failed)"
            return (
                replace(
                    router_basis,
                    keywords=extraction.keywords,
                    samples=extraction.samples,
                    note=note,
                ),
                extraction.usage,
            )
        return (
            SkillBasis("keywords", matched, extraction.keywords, extraction.samples),
            extraction.usage,
        )

    def _stages(self, names: Sequence[str]) -> list[int]:
        wanted = () if self.recruitment is None else self.recruitment.cascade
        bounds = [min(n, len(names)) for n in wanted if n < len(names)]
        return [*bounds, len(names)] if bounds else []

    async def _dispatch_in_stages(
        self,
        names: Sequence[str],
        messages: Sequence[Message],
        widen: Callable[[Sequence[str], int], Awaitable[list[str]]] | None = None,
    ) -> tuple[Dispatch, tuple[tuple[str, ...], ...]]:
        """Dispatch everyone at once, or stage by stage until the answers settle. ``widen``
        (asked, how many more): the experts after a first stage that did not settle."""
        names = list(names)
        bounds = self._stages(names) or [len(names)]
        asked: list[tuple[str, ...]] = []
        dispatch: Dispatch | None = None
        start = 0
        for index, bound in enumerate(bounds):
            if index == 1 and widen is not None:
                names[start:] = await widen(names[:start], len(names) - start)
            end = min(bound, len(names))  # widening may find fewer (a budget, few candidates)
            if end <= start:
                break
            group = tuple(names[start:end])
            spent = 0.0 if dispatch is None else dispatch.elapsed_ms / 1000
            stage = await self.dispatcher.dispatch(
                group, messages, deadline_s=max(self.settings.deadline_s - spent, 0.001)
            )
            dispatch = stage if dispatch is None else dispatch.merged(stage)
            asked.append(group)
            start = end
            answers = [extract_answer(r.text, self.settings.answer_rule) for r in dispatch.replies]
            everyone_answered = len(dispatch.replies) == end  # a failure widens the cascade
            if end < len(names) and everyone_answered and stage_settled(answers, index == 0):
                break
        assert dispatch is not None
        return dispatch, tuple(asked)

    def _scorer(self, dispatch: Dispatch, basis: SkillBasis | None) -> AnswerScorer | None:
        recruitment = self.recruitment
        if recruitment is None or recruitment.combiner is None or basis is None:
            return None
        combiner = recruitment.combiner
        competence = recruitment.recruiter.competences(basis.weights)
        experts = [r.expert for r in dispatch.replies]

        def score(answers: Sequence[str | None]) -> Mapping[str, float]:
            return combiner.scores(dict(zip(experts, answers, strict=True)), competence)

        return score

    def _vote_weights(self, dispatch: Dispatch, basis: SkillBasis | None) -> list[float] | None:
        if self.recruitment is None or basis is None:
            return None
        competence = self.recruitment.recruiter.competences(basis.weights)
        floor = min(competence.values())
        return [
            max(float(log_odds(competence.get(r.expert, floor), VOTE_OPTIONS)), MIN_VOTE_WEIGHT)
            for r in dispatch.replies
        ]

    def run_sync(
        self,
        request: Request,
        *,
        skill: str | None = None,
        expert: str | None = None,
        tools: ClientToolsArg = None,
        tool_choice: Any = None,
        sampling: SamplingArg = None,
    ) -> Answer:
        """``run`` for code without an event loop. The experts' HTTP connections belong to the
        call's loop and are closed before it returns; MCP servers stay up until ``close``."""

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: the one case run_sync is for
            pass
        else:
            raise RuntimeError(
                "run_sync was called inside a running event loop (it would block that loop); "
                "use `await switch.run(...)` there"
            )

        async def once() -> Answer:
            try:
                return await self.run(
                    request,
                    skill=skill,
                    expert=expert,
                    tools=tools,
                    tool_choice=tool_choice,
                    sampling=sampling,
                )
            finally:
                await self._close_experts()

        return anyio.run(once)

    def tool_policy(self, decision: RoutingDecision) -> ToolPolicy:
        """What the MCP tools of a request's answer may do: its skills, and the destructive
        tools those skills allow."""
        skills = decision.skill_names
        allowed = tuple(p for skill in skills for p in self._allow_destructive.get(skill, ()))
        return ToolPolicy(skills, allowed)

    async def aclose(self) -> None:
        """Close every expert's connections and stop the MCP servers."""
        await self._close_experts()
        if self.hub is not None:
            await self.hub.aclose()
        if self.backend is not None:
            await anyio.to_thread.run_sync(self.backend.close)

    def close(self) -> None:
        """``aclose`` for code without an event loop."""
        anyio.run(self.aclose)

    async def _close_experts(self) -> None:
        for spec in self._specs.values():
            close = getattr(spec.expert, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> Switch:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    @overload
    def stream(
        self,
        request: Request,
        *,
        skill: str | None = None,
        expert: str | None = None,
        tools: ClientToolsArg = None,
        tool_choice: Any = None,
        sampling: SamplingArg = None,
        announce_route: Literal[False] = False,
    ) -> AsyncIterator[TextDelta | Answer]: ...

    @overload
    def stream(
        self,
        request: Request,
        *,
        skill: str | None = None,
        expert: str | None = None,
        tools: ClientToolsArg = None,
        tool_choice: Any = None,
        sampling: SamplingArg = None,
        announce_route: Literal[True],
    ) -> AsyncIterator[Routed | TextDelta | Answer]: ...

    async def stream(
        self,
        request: Request,
        *,
        skill: str | None = None,
        expert: str | None = None,
        tools: ClientToolsArg = None,
        tool_choice: Any = None,
        sampling: SamplingArg = None,
        announce_route: bool = False,
    ) -> AsyncIterator[Routed | TextDelta | Answer]:
        """Text deltas, then the ``Answer``. One expert streams token by token under the
        dispatcher's rules (``Dispatcher.stream``: an attempt that fails before its first
        token is retried, then falls back, within the same budget; a failure after text went
        out raises its ``ExpertError``). Several experts are dispatched as ``run`` does; when
        their answers need the aggregator, its synthesis streams token by token under the same
        rules (if it fails before its first token, the best-ranked reply is the answer), else
        the settled answer (agreement, a vote) is one delta. ``skill``, ``expert``, ``tools``
        and ``tool_choice`` as in ``run`` (calls of the caller's tools are in the ``Answer``).
        ``announce_route``: first a ``Routed`` event with the decision and the experts chosen,
        before any expert is called."""
        started = time.perf_counter()
        messages = parse_messages(request)
        offered = parse_client_tools(tools, tool_choice)
        asked = parse_sampling(sampling)
        decision, route_ms = await self._decide(messages, skill, expert)
        state = _RequestState(messages, decision, offered, asked, route_ms, started)
        if decision.out_of_scope:
            if announce_route:
                yield Routed(decision, ())
            answer = self._out_of_scope(state)
            yield TextDelta(answer.text)
            yield answer
            return
        chosen = await self._choose(messages, decision, skill, expert, offered)
        if announce_route:
            yield Routed(decision, chosen.selections)
        if asked.response_format is not None:
            # The answer goes out once it is known to be in the form: text streamed before
            # it is checked could not be taken back.
            answer = await self._answer_chosen(state, chosen)
            if answer.text:
                yield TextDelta(answer.text)
            yield answer
            return
        earlier: Dispatch | None = None
        if len(chosen.selections) == 1:
            single: Dispatch | None = None
            name = chosen.selections[0].expert
            events = self._stream_one(state, name)
            async with contextlib.aclosing(events):  # closed with this stream, not later
                async for event in events:
                    if isinstance(event, TextDelta):
                        yield event
                    else:
                        single = event
            assert single is not None  # a dispatcher's stream always ends with its Dispatch
            if single.replies:
                aggregation = await aggregate(messages, single.replies, aggregator=None)
                note = self._unanswered(decision, chosen.selections, single)
                if note and not aggregation.tool_calls:
                    yield TextDelta(note)
                yield self._answer(
                    state,
                    chosen.selections,
                    single,
                    self._noted(aggregation, note),
                    basis=chosen.basis,
                    extra_usage=chosen.extraction_usage,
                )
                return
            earlier = single  # no answer: the next candidate skill's experts, or the error
        dispatch, basis, selections, last = await self._answered(state, chosen, earlier)
        settled = self._settle(messages, dispatch, basis)
        if isinstance(settled, Synthesis):
            async for part in self._synthesise_stream(state, settled):
                if isinstance(part, TextDelta):
                    yield part
                else:
                    aggregation = part
        else:
            aggregation = settled
            if aggregation.text:
                yield TextDelta(aggregation.text)
        note = self._unanswered(decision, last, dispatch)
        if note and not aggregation.tool_calls:
            yield TextDelta(note)
        yield self._answer(
            state,
            selections,
            dispatch,
            self._noted(aggregation, note),
            basis=basis,
            extra_usage=chosen.extraction_usage,
        )

    async def _stream_one(
        self, state: _RequestState, name: str
    ) -> AsyncGenerator[TextDelta | Dispatch, None]:
        """One expert's answer token by token under the dispatcher's rules, then its dispatch;
        the request's tool policy, client tools and sampling hold while it streams."""
        policy = enter_tool_policy(self.tool_policy(state.decision))
        offering = enter_client_tools(state.offered)
        asking = enter_request_sampling(state.sampling)
        events = self.dispatcher.stream(name, state.messages, deadline_s=self.settings.deadline_s)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            leave_request_sampling(asking)
            leave_client_tools(offering)
            leave_tool_policy(policy)

    def _unanswered(
        self, decision: RoutingDecision, selections: Sequence[Selection], dispatch: Dispatch
    ) -> str:
        """A note of the skills routed to that no expert answered (none with recruitment: its
        experts all answer the request as a whole)."""
        if self.recruitment is not None:
            return ""
        return unanswered_note(decision, selections, dispatch)

    @staticmethod
    def _noted(aggregation: Aggregation, note: str) -> Aggregation:
        if not note or aggregation.tool_calls:
            return aggregation
        return replace(aggregation, text=aggregation.text + note)

    async def _route(self, messages: Sequence[Message]) -> tuple[RoutingDecision, float]:
        begin = time.perf_counter()
        decision = await anyio.to_thread.run_sync(self.router.route, last_user_text(messages))
        return decision, (time.perf_counter() - begin) * 1000

    def _out_of_scope(self, state: _RequestState) -> Answer:
        trace = Trace(state.decision, (), None, None, Usage(), state.route_ms, state.elapsed_ms())
        asked = state.sampling.response_format
        if asked is not None:
            failed = out_of_scope_error(self._out_of_scope_reply, asked)
            failed.trace = trace
            raise failed
        return Answer(self._out_of_scope_reply, trace)

    def _answer(
        self,
        state: _RequestState,
        selections: tuple[Selection, ...],
        dispatch: Dispatch,
        aggregation: Aggregation,
        *,
        basis: SkillBasis | None = None,
        extra_usage: Usage | None = None,
        remember: bool = True,
    ) -> Answer:
        """The answer and its trace; the turn is remembered for a follow-up (unless
        ``remember`` is false: an answer that fails the request, whose trace the error
        carries)."""
        if remember:
            self._remember(
                state.messages, state.decision, selections, dispatch.replies, aggregation
            )
        trace = Trace(
            state.decision,
            selections,
            dispatch,
            aggregation,
            dispatch.usage + aggregation.usage + (extra_usage or Usage()),
            state.route_ms,
            state.elapsed_ms(),
            basis,
        )
        return Answer(aggregation.text, trace)


def _router_weights(decision: RoutingDecision) -> dict[str, float]:
    return {s.skill: max(s.score, 1e-6) for s in decision.skills}


@dataclass(frozen=True, slots=True)
class _RequestState:
    """What holds for the whole of one request's answer: the conversation, its route, what the
    caller offered and asked for, and when it started."""

    messages: Sequence[Message]
    decision: RoutingDecision
    offered: ClientTools | None
    sampling: SamplingSettings
    route_ms: float
    started: float
    """``time.perf_counter()`` when the request came."""

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


@dataclass(frozen=True, slots=True)
class _Chosen:
    """The experts chosen for a request, why, and what choosing them cost."""

    selections: tuple[Selection, ...]
    basis: SkillBasis | None
    extraction_usage: Usage
    recruited: bool = False
    """Recruited from profiles (not named by the caller or kept from the previous turn)."""
    by_skill: bool = False
    """Chosen by the skills they declare for the router's decision: the router's next
    candidate skills may stand in when they decline (``dispatch.skill_fallbacks``)."""
    tried: tuple[str, ...] = ()
    """The skills whose experts were chosen (the routed ones, then each fallback)."""
    unserved: NoExpertError | None = None
    """No expert serves the routed skills: the error to raise if no fallback answers."""


def _failures(dispatch: Dispatch) -> str:
    errors = [str(result.error) for result in dispatch.results if result.error is not None]
    return "; ".join(errors) or "no answer before the request's deadline"
