"""The local inference backend: a registry, a memory-budgeted residency and a scheduler."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillswitch.exceptions import ModelTooLargeError, WrongModelKindError
from skillswitch.inference.loading import LoadedModel, resolve_device
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.registry import ModelEntry, ModelRegistry
from skillswitch.inference.requests import Conversation, GenerationParams, GenerationResult
from skillswitch.inference.residency import MemoryBudget, Residency, ResidentModel
from skillswitch.inference.scheduler import GenerationHandle, Prompt, Scheduler
from skillswitch.inference.tool_formats import HERMES, ToolCallFormat

__all__ = ["Embeddings", "LocalBackend", "WrongModelKindError", "default_budget"]


@dataclass(frozen=True, slots=True)
class Embeddings:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int


def default_budget(device: str) -> MemoryBudget:
    """80% of the GPU's memory for weights (the rest for KV caches and activations), and a
    quarter of the host's memory as the pinned tier; on the CPU, half of the host's memory."""
    host_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if device.startswith("cuda"):
        import torch

        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return MemoryBudget(int(total * 0.8), host_total // 4)
    return MemoryBudget(host_total // 2, 0)


class LocalBackend:
    """Self-hosted models served in-process, batched by model under a memory budget.

    >>> registry = ModelRegistry()
    >>> registry.add("coder", "/models/coder")  # doctest: +SKIP
    >>> backend = LocalBackend(registry)  # doctest: +SKIP
    >>> messages = [{"role": "user", "content": "hi"}]
    >>> result = await backend.generate("coder", messages)  # doctest: +SKIP
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        device: str = "auto",
        budget: MemoryBudget | None = None,
        settings: SchedulerSettings | None = None,
        host_tier: bool | None = None,
    ) -> None:
        """``host_tier``: keep models evicted from the device in (pinned) host memory, within
        ``budget.host_bytes``; None: on CUDA devices only."""
        self.registry = registry
        self.device = resolve_device(device)
        self.budget = budget or default_budget(self.device)
        self.residency = Residency(registry, self.budget, self.device, host_tier=host_tier)
        for name in registry.names():  # a model that can never fit is a config mistake
            if self.residency.expected_bytes(name) > self.budget.device_bytes:
                raise ModelTooLargeError(
                    name, self.residency.expected_bytes(name), self.budget.device_bytes, "device"
                )
        self.scheduler = Scheduler(self.residency, settings)

    @classmethod
    def from_folders(cls, folders: dict[str, str | Path], **kwargs: Any) -> LocalBackend:
        registry = ModelRegistry()
        for name, folder in folders.items():
            registry.add(name, folder)
        return cls(registry, **kwargs)

    def models(self) -> list[ModelEntry]:
        return [self.registry.get(name) for name in self.registry.names()]

    def tool_call_format(self, model: str) -> ToolCallFormat:
        """The format ``model`` writes tool calls in, found from its chat template. Hermes'
        for a model that is not registered or whose template writes none: a request with
        tools then fails when it is tokenized, saying why."""
        found = self.registry.get(model).info.tool_call_format if model in self.registry else None
        return found or HERMES

    # --- generation --------------------------------------------------------------------------

    def submit(
        self,
        model: str,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        stream: bool = True,
    ) -> GenerationHandle:
        """Queue a generation; the handle streams, awaits or cancels it. ``stream=False``: its
        text arrives whole at the end (cheaper when nobody reads it token by token)."""
        entry = self.registry.get(model)
        if entry.kind != "chat":
            raise WrongModelKindError(
                f"model {model!r} is an embedding model; send it to /v1/embeddings "
                "or choose a chat model"
            )
        messages = prompt.messages if isinstance(prompt, Conversation) else prompt
        if not isinstance(messages, str) and not messages:
            raise ValueError("messages is empty; send at least one message")
        return self.scheduler.submit(model, prompt, params or GenerationParams(), stream=stream)

    async def generate(
        self, model: str, prompt: Prompt, params: GenerationParams | None = None
    ) -> GenerationResult:
        handle = self.submit(model, prompt, params, stream=False)
        return await handle.result()

    async def stream(
        self, model: str, prompt: Prompt, params: GenerationParams | None = None
    ) -> AsyncIterator[str]:
        handle = self.submit(model, prompt, params)
        async for chunk in handle.stream():
            yield chunk

    def generate_sync(
        self,
        model: str,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        timeout: float | None = None,
    ) -> GenerationResult:
        return self.submit(model, prompt, params, stream=False).result_sync(timeout)

    # --- embeddings ---------------------------------------------------------------------------

    async def embed(self, model: str, texts: Sequence[str]) -> Embeddings:
        future = self._embed_call(model, texts)
        return await asyncio.wrap_future(future)

    def embed_sync(self, model: str, texts: Sequence[str]) -> Embeddings:
        return self._embed_call(model, texts).result()

    def _embed_call(self, model: str, texts: Sequence[str]) -> Future[Embeddings]:
        entry = self.registry.get(model)
        if entry.kind != "embedding":
            raise WrongModelKindError(
                f"model {model!r} is a chat model; /v1/embeddings needs an embedding model"
            )
        if not texts:
            raise ValueError("input is empty; send at least one text to embed")
        items = list(texts)

        def run() -> Embeddings:
            loaded = self.residency.acquire(model)
            try:
                return _embed(loaded, items)
            finally:
                self.residency.release(model)

        return self.scheduler.call(run)

    # --- residency ----------------------------------------------------------------------------

    def load_sync(self, model: str) -> None:
        """Bring ``model`` onto the device now (it is otherwise loaded on first use)."""
        self.registry.get(model)

        def run() -> None:
            self.residency.acquire(model)
            self.residency.release(model)

        self.scheduler.call(run).result()

    def preload(self, models: Sequence[str]) -> None:
        """Load ``models`` onto the device now, in order, so that their first requests do not
        wait for a load. With ``compile_decode``, each chat model then generates a few tokens
        in batches of two rows, three rows and one row, so that its decode step is compiled
        before any request comes, for every batch size: dynamo first compiles for the size it
        sees (the static cache's batch size is fixed), makes the size dynamic when a second
        size comes, and compiles a single row apart. This is done after every model is loaded,
        as transformers' registry of model classes is part of what the compiled code checks.

        Raises ``ValueError`` when together they need more than the device budget (each
        load would evict an earlier one).
        """
        names = list(dict.fromkeys(models))
        entries = [self.registry.get(name) for name in names]
        needed = sum(self.residency.expected_bytes(name) for name in names)
        if needed > self.budget.device_bytes:
            raise ValueError(
                f"preloading {', '.join(names)} needs {needed / 2**30:.2f} GiB of weights but "
                f"the device budget is {self.budget.device_bytes / 2**30:.2f} GiB; preload "
                "fewer models or raise inference.memory.device_gb"
            )
        for name in names:
            self.load_sync(name)
        settings = self.scheduler.settings
        if not (settings.static_decode and settings.compile_decode):
            return
        warm = GenerationParams(max_new_tokens=2)
        for entry in entries:
            if entry.kind == "chat":
                for prompts in (["Hi", "Hey"], ["Hi", "Hey", "Hello"], ["Hello"]):
                    for handle in self.scheduler.submit_together(
                        entry.name, prompts, warm, stream=False
                    ):
                        handle.result_sync()

    def unload_sync(self, model: str) -> bool:
        self.registry.get(model)
        return bool(self.scheduler.call(lambda: self.residency.unload(model)).result())

    def resident(self) -> list[ResidentModel]:
        return self.residency.snapshot()

    def status(self) -> dict[str, Any]:
        stats = self.residency.stats
        return {
            "device": self.device,
            "budget_bytes": {"device": self.budget.device_bytes, "host": self.budget.host_bytes},
            "resident": [_resident(r) for r in self.resident()],
            "queued": self.scheduler.queued(),
            "loads": stats.loads,
            "load_s": round(stats.load_s, 3),
            "promotions": stats.promotions,
            "evictions": {"host": stats.evictions_to_host, "disk": stats.evictions_to_disk},
            "batches": self.scheduler.stats.batches,
            "largest_batch": self.scheduler.stats.largest_batch,
        }

    def close(self) -> None:
        self.scheduler.close()
        self.residency.close()


def _resident(model: ResidentModel) -> dict[str, Any]:
    return {"name": model.name, "location": model.location, "bytes": model.nbytes}


def _embed(loaded: LoadedModel, texts: list[str]) -> Embeddings:
    """Mean of the last hidden states over real tokens, L2-normalised (sentence-transformers'
    pooling for MiniLM-style models)."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    vectors: list[list[float]] = []
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            chunk = texts[start : start + 64]
            batch = tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=loaded.max_positions or 512,
                return_tensors="pt",
            ).to(model.device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
            vectors.extend(pooled.cpu().tolist())
            tokens += int(batch["attention_mask"].sum())
    return Embeddings(loaded.name, vectors, tokens)
