"""What a generation asks for and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from skillswitch.inference.grammar import OutputGrammar

__all__ = ["Conversation", "FinishReason", "GenerationParams", "GenerationResult"]

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """Chat messages (OpenAI's shapes, ``tool_calls`` and ``tool`` messages included) and the
    tools the model is shown, rendered by its chat template (``inference.tool_calls``)."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]] = ()
    """OpenAI's ``{"type": "function", "function": {...}}`` entries."""


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Decoding settings of one request. ``temperature`` 0 is greedy.

    ``seed`` makes a sampled request reproducible whatever else shares its batch: each request
    draws from its own generator. ``grammar`` holds the answer to a form (JSON, or JSON that a
    schema accepts: ``skillswitch.inference.grammar.json_grammar``) by constrained decoding.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    grammar: OutputGrammar | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens is {self.max_new_tokens}; give 1 or more")
        if self.temperature < 0:
            raise ValueError(f"temperature is {self.temperature}; give 0 (greedy) or more")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p is {self.top_p}; give a value in (0, 1]")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True, slots=True)
class GenerationResult:
    model: str
    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    finish_reason: FinishReason
    queued_s: float = 0.0
    """From submission until its batch started (includes a model load, if one was needed)."""
    generation_s: float = 0.0
    batch_size: int = 1
    """How many requests shared the batch this one started in."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)
