"""Self-hosted experts: local model folders served in-process, batched by model, under a budget.

Needs torch and transformers (``pip install 'skillswitch[local]'``); nothing here is imported by
``import skillswitch``.
"""

from skillswitch.inference.backend import Embeddings, LocalBackend, WrongModelKindError
from skillswitch.inference.grammar import OutputGrammar, json_grammar
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.registry import ModelEntry, ModelRegistry
from skillswitch.inference.requests import GenerationParams, GenerationResult
from skillswitch.inference.residency import MemoryBudget
from skillswitch.inference.scheduler import GenerationHandle

__all__ = [
    "Embeddings",
    "GenerationHandle",
    "GenerationParams",
    "GenerationResult",
    "LocalBackend",
    "MemoryBudget",
    "ModelEntry",
    "ModelRegistry",
    "OutputGrammar",
    "SchedulerSettings",
    "WrongModelKindError",
    "json_grammar",
]
