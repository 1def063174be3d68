"""What a ``Switch`` is made of, built from the config: each configured expert's adapter (a chat
model with or without tools, a local model, a tool expert) and profile-based recruitment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skillswitch.agents.base import Expert
from skillswitch.agents.messages import Prices
from skillswitch.agents.openai_chat import OpenAIChatExpert, SamplingSettings
from skillswitch.agents.tool_calling import ToolCallingExpert
from skillswitch.config import environment
from skillswitch.config.models import (
    ExpertConfig,
    LocalExpertConfig,
    RecruitmentConfig,
    ToolExpertConfig,
)
from skillswitch.exceptions import ConfigError
from skillswitch.router import Router
from skillswitch.router.combiner import AnswerCombiner
from skillswitch.router.keywords import KeywordMatcher
from skillswitch.router.profiles import ExpertProfiles
from skillswitch.router.recruitment import Recruiter, RecruitmentPolicy
from skillswitch.tools.base import Tool
from skillswitch.tools.builtin import BUILTIN_TOOLS
from skillswitch.tools.sources import (
    CatalogueTools,
    CombinedTools,
    MCPTool,
    StaticTools,
    ToolSource,
)

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.tools.finder import ToolFinder
    from skillswitch.tools.hub import ToolHub

__all__ = ["ExpertSpec", "Recruitment", "build_expert", "build_recruitment"]

DeclaredExpert = ExpertConfig | ToolExpertConfig | LocalExpertConfig


@dataclass(frozen=True)
class ExpertSpec:
    """An expert and the skills it serves (empty: every skill), with its fallbacks."""

    expert: Expert
    skills: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Recruitment:
    """Profile-based recruitment for a ``Switch`` (see ``RecruitmentConfig``).

    ``keywords``: when set, the keyword-extraction expert's keywords (matched to profiled
    keywords) choose the experts; the router's skills stand in when none matches.
    """

    recruiter: Recruiter
    cascade: tuple[int, ...] = ()
    """Answers wanted after each stage, e.g. (2, 4, 5); empty: everyone at once."""
    keyword_expert: str | None = None
    keywords: KeywordMatcher | None = None
    keyword_samples: int = 5
    keyword_min_count: int = 2
    combiner: AnswerCombiner | None = None

    @property
    def profiles(self) -> ExpertProfiles:
        return self.recruiter.profiles


def build_expert(
    declared: DeclaredExpert,
    index: int,
    hub: ToolHub | None,
    finder: ToolFinder | None,
    tools_k: int,
    backend: LocalBackend | None,
) -> Expert:
    """The adapter a config entry describes: a chat model, with a tool loop when it has tools
    (builtin functions, and MCP tools of the hub: the ``tools_k`` most relevant per request);
    or a tool expert (one tool call, no model)."""
    if isinstance(declared, ToolExpertConfig):
        return _tool_expert(declared, hub)
    tools = _tools(declared.tools, hub, finder, tools_k) if declared.tools else None
    if isinstance(declared, LocalExpertConfig):
        assert backend is not None, "from_config builds the backend for local experts"
        return _local_expert(declared, backend, tools)
    settings: dict[str, Any] = {
        "api_key": environment.api_key(declared.api_key_env, path=f"experts[{index}].api_key_env"),
        "timeout_s": declared.timeout_s,
        "sampling": SamplingSettings(**declared.sampling.model_dump()),
        "prices": Prices(**declared.prices.model_dump()),
    }
    if tools is not None:
        return ToolCallingExpert(
            declared.name,
            str(declared.base_url),
            declared.model,
            tools=tools,
            max_steps=declared.max_tool_steps,
            **settings,
        )
    return OpenAIChatExpert(declared.name, str(declared.base_url), declared.model, **settings)


def _tools(
    names: Sequence[str], hub: ToolHub | None, finder: ToolFinder | None, tools_k: int
) -> ToolSource:
    """An expert's tools: builtin functions, and MCP tools of the hub (the ``tools_k`` most
    relevant per request)."""
    builtin = [BUILTIN_TOOLS[name]() for name in names if name in BUILTIN_TOOLS]
    patterns = [name for name in names if name not in BUILTIN_TOOLS]
    sources: list[ToolSource] = [StaticTools(builtin)]
    if patterns:
        assert hub is not None, "config validation checks that MCP tools name a server"
        retriever = None if finder is None else finder.select
        sources.append(CatalogueTools(hub, patterns, k=tools_k, retriever=retriever))
    return sources[0] if len(sources) == 1 else CombinedTools(sources)


def _local_expert(
    declared: LocalExpertConfig, backend: LocalBackend, tools: ToolSource | None
) -> Expert:
    from skillswitch.agents.local_model import LocalExpert
    from skillswitch.inference.requests import GenerationParams

    sampling = declared.sampling
    params = GenerationParams(
        max_new_tokens=sampling.max_tokens or 512,
        temperature=sampling.temperature or 0.0,
        top_p=sampling.top_p or 1.0,
        seed=sampling.seed,
        stop=tuple(sampling.stop or ()),
    )
    prices = Prices(**declared.prices.model_dump())
    return LocalExpert(
        declared.name,
        backend,
        declared.model,
        params=params,
        prices=prices,
        tools=tools,
        max_tool_steps=declared.max_tool_steps,
    )


def _tool_expert(declared: ToolExpertConfig, hub: ToolHub | None) -> Expert:
    from skillswitch.agents.tool_expert import ToolExpert
    from skillswitch.tools.phrasing import ARGUMENT_READERS

    tool: Tool
    if declared.tool in BUILTIN_TOOLS:
        tool = BUILTIN_TOOLS[declared.tool]()
    else:
        assert hub is not None, "config validation checks that the tool names a server"
        tool = MCPTool(hub, declared.tool)
    own_name = declared.tool.rpartition("__")[2]
    read = ARGUMENT_READERS[own_name] if declared.arguments == "words" else None
    return ToolExpert(declared.name, tool, read)


def _cascade(setting: list[int] | bool, k: int) -> tuple[int, ...]:
    if setting is True:
        return (2, k)
    return tuple(setting) if isinstance(setting, list) else ()


def build_recruitment(
    settings: RecruitmentConfig,
    router: Router,
    specs: Sequence[ExpertSpec],
    declared: Sequence[DeclaredExpert],
) -> Recruitment | None:
    """Recruitment from ``recruitment.profiles`` (None when no profiles are configured): the
    recruiter over the configured experts that have a profile, with their expected costs, the
    keyword matcher and the learned combiner when the profiles carry them."""
    if settings.profiles is None:
        return None
    profiles = ExpertProfiles.load(settings.profiles)
    tokens = settings.expected_tokens
    costs = {
        d.name: Prices(**d.prices.model_dump()).usage(tokens.input, tokens.output).cost
        if isinstance(d, ExpertConfig | LocalExpertConfig)
        else 0.0
        for d in declared
    }
    helpers = {settings.keyword_expert}
    names = [spec.expert.name for spec in specs if spec.expert.name not in helpers]
    if not any(profiles.has_expert(name) for name in names):
        raise ConfigError.single(
            "recruitment.profiles",
            f"none of the configured experts ({', '.join(names[:6]) or 'none'}) has a profile in "
            f"{settings.profiles} (profiled: {', '.join(profiles.experts[:6])}, ...); name the "
            "experts as in the validation results",
        )
    neighbours = profiles.neighbours
    if neighbours is not None and neighbours.encoder != router.encoder.identity:
        raise ConfigError.single(
            "recruitment.profiles",
            f"{settings.profiles}'s tie-break neighbours were embedded by "
            f"{neighbours.encoder_name or neighbours.encoder!r}, not the router's encoder "
            f"({router.encoder.name!r}); refit them with this config "
            "(`skillswitch fit profiles --neighbours K --config ...`) or refit without "
            "--neighbours",
        )
    recruiter = Recruiter(
        profiles,
        RecruitmentPolicy(
            k=settings.k,
            temperature=settings.temperature,
            budget=settings.budget,
            cost_weight=settings.cost_weight,
            near_tie=settings.near_tie,
            seed=settings.seed,
        ),
        costs=costs,
        available=names,
    )
    matcher = None
    if settings.keyword_expert is not None:
        matcher = KeywordMatcher(
            profiles,
            router.encoder,
            min_similarity=settings.keyword_min_similarity,
        )
    return Recruitment(
        recruiter,
        cascade=_cascade(settings.cascade, settings.k),
        keyword_expert=settings.keyword_expert,
        keywords=matcher,
        keyword_samples=settings.keyword_samples,
        keyword_min_count=settings.keyword_min_count,
        combiner=None
        if profiles.combiner is None
        else AnswerCombiner.from_dict(profiles.experts, profiles.combiner),
    )
