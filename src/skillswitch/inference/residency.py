"""Which models are in memory: an LRU over tiers under a byte budget.

Tiers, fastest first: the device (GPU, or the CPU when there is none), pinned host memory (CUDA
only: a model evicted from the GPU comes back with one DMA copy instead of a read from disk and
a parse), and disk (the model folder). Budgets count weight bytes; the KV cache and activations
need headroom beyond them. A model in use by a running batch is never evicted.

All methods are called from the scheduler's one worker thread; ``snapshot`` may be called from
any thread.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from skillswitch.exceptions import ModelTooLargeError
from skillswitch.inference.loading import (
    LoadedModel,
    element_bytes,
    load_model,
    resolve_dtype,
)
from skillswitch.inference.registry import ModelRegistry

__all__ = ["MemoryBudget", "Residency", "ResidencyStats", "ResidentModel"]


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """Weight bytes allowed on the device and in pinned host memory (0: no host tier)."""

    device_bytes: int
    host_bytes: int = 0

    @classmethod
    def gib(cls, device: float, host: float = 0.0) -> MemoryBudget:
        return cls(int(device * 2**30), int(host * 2**30))


@dataclass(slots=True)
class ResidencyStats:
    loads: int = 0
    """Loads from disk (folder -> device)."""
    load_s: float = 0.0
    promotions: int = 0
    """Moves from pinned host memory back to the device."""
    promotion_s: float = 0.0
    evictions_to_host: int = 0
    evictions_to_disk: int = 0
    events: list[str] = field(default_factory=list)
    """``load:NAME``, ``promote:NAME``, ``evict:NAME->host|disk``, in order (last 1000)."""

    def record(self, event: str) -> None:
        self.events.append(event)
        if len(self.events) > 1000:
            del self.events[:100]


@dataclass(frozen=True, slots=True)
class ResidentModel:
    name: str
    location: str
    nbytes: int


Loader = Callable[[str], LoadedModel]


class Residency:
    def __init__(
        self,
        registry: ModelRegistry,
        budget: MemoryBudget,
        device: str,
        *,
        loader: Loader | None = None,
        host_tier: bool | None = None,
    ) -> None:
        """``host_tier``: keep evicted models in host memory (None: on CUDA devices, when the
        budget has host bytes; pinned whenever CUDA is present)."""
        self._registry = registry
        self._budget = budget
        self._device = device
        if host_tier is None:
            host_tier = device.startswith("cuda")
        self._host_tier = host_tier and budget.host_bytes > 0
        self._loader = loader or self._load_from_folder
        # Least recently used first.
        self._on_device: OrderedDict[str, LoadedModel] = OrderedDict()
        self._on_host: OrderedDict[str, LoadedModel] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self._lock = threading.Lock()
        self.stats = ResidencyStats()

    @property
    def device(self) -> str:
        return self._device

    def expected_bytes(self, name: str) -> int:
        """Weight bytes of ``name`` once loaded, from its folder's headers."""
        entry = self._registry.get(name)
        return entry.info.bytes_as(element_bytes(resolve_dtype(entry.dtype, self._device)))

    def is_resident(self, name: str) -> bool:
        return name in self._on_device

    def fits_without_eviction(self, name: str) -> bool:
        return self._device_used() + self.expected_bytes(name) <= self._budget.device_bytes

    def acquire(self, name: str) -> LoadedModel:
        """``name`` on the device, loading or promoting it (evicting others) when needed."""
        loaded = self._on_device.get(name)
        if loaded is None:
            loaded = self._bring_to_device(name)
        with self._lock:
            self._on_device.move_to_end(name)
            self._in_use[name] = self._in_use.get(name, 0) + 1
        loaded.last_used = time.monotonic()
        return loaded

    def release(self, name: str) -> None:
        with self._lock:
            count = self._in_use.get(name, 0) - 1
            if count > 0:
                self._in_use[name] = count
            else:
                self._in_use.pop(name, None)

    def unload(self, name: str) -> bool:
        """Drop ``name`` from every tier (back to disk). False when it was not loaded."""
        self._registry.get(name)
        if self._in_use.get(name):
            raise RuntimeError(f"model {name!r} is generating; unload it when its batch ends")
        with self._lock:
            dropped = self._on_device.pop(name, None) or self._on_host.pop(name, None)
        if dropped is None:
            return False
        self.stats.record(f"unload:{name}")
        _free(dropped)
        return True

    def snapshot(self) -> list[ResidentModel]:
        with self._lock:
            return [ResidentModel(n, "device", m.nbytes) for n, m in self._on_device.items()] + [
                ResidentModel(n, "host", m.nbytes) for n, m in self._on_host.items()
            ]

    def close(self) -> None:
        with self._lock:
            models = [*self._on_device.values(), *self._on_host.values()]
            self._on_device.clear()
            self._on_host.clear()
        for model in models:
            _free(model)

    # --- moves between tiers ---------------------------------------------------------------

    def _bring_to_device(self, name: str) -> LoadedModel:
        needed = self.expected_bytes(name)
        if needed > self._budget.device_bytes:
            raise ModelTooLargeError(name, needed, self._budget.device_bytes, "device")
        with self._lock:  # out of the host tier first, so making room never drops it
            on_host = self._on_host.pop(name, None)
        try:
            self._make_room(needed)
        except BaseException:
            if on_host is not None:
                with self._lock:
                    self._on_host[name] = on_host
            raise
        started = time.perf_counter()
        if on_host is not None:
            on_host.model.to(self._device)
            on_host.location = "device"
            release_pinned_cache()  # its pinned copy is free now
            loaded = on_host
            with self._lock:
                self._on_device[name] = loaded
            self.stats.promotions += 1
            self.stats.promotion_s += time.perf_counter() - started
            self.stats.record(f"promote:{name}")
            return loaded
        loaded = self._loader(name)
        with self._lock:
            self._on_device[name] = loaded
        self.stats.loads += 1
        self.stats.load_s += time.perf_counter() - started
        self.stats.record(f"load:{name}")
        return loaded

    def _make_room(self, needed: int) -> None:
        while self._device_used() + needed > self._budget.device_bytes:
            victim = next((n for n in self._on_device if not self._in_use.get(n)), None)
            if victim is None:
                busy = ", ".join(self._on_device)
                raise ModelTooLargeError(
                    f"(next model; busy: {busy})", needed, self._budget.device_bytes, "device"
                )
            self._evict(victim)

    def _evict(self, name: str) -> None:
        with self._lock:
            loaded = self._on_device.pop(name)
        if self._host_tier and loaded.nbytes <= self._budget.host_bytes:
            while self._host_used() + loaded.nbytes > self._budget.host_bytes:
                with self._lock:
                    _, dropped = self._on_host.popitem(last=False)
                self.stats.evictions_to_disk += 1
                self.stats.record(f"evict:{dropped.name}->disk")
                _free(dropped)
            _to_pinned_host(loaded)
            with self._lock:
                self._on_host[name] = loaded
            self.stats.evictions_to_host += 1
            self.stats.record(f"evict:{name}->host")
            return
        self.stats.evictions_to_disk += 1
        self.stats.record(f"evict:{name}->disk")
        _free(loaded)

    def _device_used(self) -> int:
        return sum(m.nbytes for m in self._on_device.values())

    def _host_used(self) -> int:
        return sum(m.nbytes for m in self._on_host.values())

    def _load_from_folder(self, name: str) -> LoadedModel:
        entry = self._registry.get(name)
        dtype = resolve_dtype(entry.dtype, self._device)
        return load_model(name, entry.info, self._device, dtype)


def _to_pinned_host(loaded: LoadedModel) -> None:
    import torch

    loaded.model.to("cpu")
    if torch.cuda.is_available():  # pinned: the way back to the GPU is one DMA copy
        for tensor in [*loaded.model.parameters(), *loaded.model.buffers()]:
            tensor.data = tensor.data.pin_memory()
    loaded.location = "host"


def _free(loaded: LoadedModel) -> None:
    device = loaded.device
    loaded.model = None
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    release_pinned_cache()


def release_pinned_cache() -> None:
    """Give freed pinned host memory back to the OS.

    PyTorch's host allocator keeps freed pinned blocks for reuse; a model promoted back to the GPU
    or dropped from the host tier would otherwise stay pinned, and the host tier would grow past
    its budget (seen on an H200 host: 113 GB pinned for a 60 GB tier, then the OOM killer).
    """
    import torch

    if not torch.cuda.is_available():
        return
    for name in ("_accelerator_emptyHostCache", "_host_emptyCache", "_cuda_hostEmptyCache"):
        empty = getattr(torch._C, name, None)
        if empty is not None:
            empty()
            return
