"""The local backend that a config's ``inference`` section describes."""

from __future__ import annotations

from skillswitch.config.models import InferenceConfig
from skillswitch.exceptions import ConfigError
from skillswitch.inference.backend import LocalBackend, default_budget
from skillswitch.inference.loading import resolve_device
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.registry import ModelRegistry
from skillswitch.inference.residency import MemoryBudget

__all__ = ["build_backend"]


def build_backend(config: InferenceConfig) -> LocalBackend:
    """Register every model folder (checked now, loaded on first use unless ``preload``), start
    the scheduler and preload the models that ask for it (``LocalBackend.preload``)."""
    registry = ModelRegistry()
    for model in config.models:
        registry.add(
            model.name, model.path, dtype=model.dtype, tool_call_format=model.tool_call_format
        )
    device = resolve_device(config.device)
    default = default_budget(device)
    memory = config.memory
    budget = MemoryBudget(
        int(memory.device_gb * 2**30) if memory.device_gb is not None else default.device_bytes,
        int(memory.host_gb * 2**30) if memory.host_gb is not None else default.host_bytes,
    )
    settings = SchedulerSettings(**config.scheduler.model_dump())
    backend = LocalBackend(registry, device=device, budget=budget, settings=settings)
    preloaded = [model.name for model in config.models if model.preload]
    try:
        backend.preload(preloaded)
    except ValueError as exc:
        backend.close()
        raise ConfigError.single("inference.models", str(exc)) from None
    except BaseException:
        backend.close()
        raise
    return backend
