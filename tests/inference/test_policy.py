"""The scheduler's policy: resident experts drain first, a fairness cap, swaps only when worth it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from skillswitch.inference import GenerationParams, LocalBackend, MemoryBudget, ModelRegistry
from skillswitch.inference.policy import QueueView, SchedulerSettings, choose_next

SETTINGS = SchedulerSettings(max_wait_s=5.0, swap_min_queue=4, swap_max_wait_s=0.05)


def view(
    model: str, length: int, oldest: float, *, resident: bool, fits: bool = False
) -> QueueView:
    return QueueView(model, length, oldest, resident, fits or resident)


def test_resident_experts_drain_before_a_longer_queue_that_needs_a_load() -> None:
    queues = [view("cold", 9, 0.0, resident=False), view("warm", 2, 1.0, resident=True)]
    assert choose_next(queues, SETTINGS, now=2.0) == ("warm", None)


def test_the_longest_resident_queue_runs_first() -> None:
    queues = [view("a", 2, 0.0, resident=True), view("b", 5, 1.0, resident=True)]
    assert choose_next(queues, SETTINGS, now=2.0) == ("b", None)


def test_the_fairness_cap_serves_a_starving_expert_over_resident_ones() -> None:
    queues = [view("cold", 1, 0.0, resident=False), view("warm", 30, 4.0, resident=True)]
    assert choose_next(queues, SETTINGS, now=5.0) == ("cold", None)
    assert choose_next(queues, SETTINGS, now=4.9) == ("warm", None)


def test_a_lone_request_waits_briefly_before_it_evicts_a_model() -> None:
    lone = [view("cold", 1, 10.0, resident=False)]
    model, wait = choose_next(lone, SETTINGS, now=10.01)
    assert model is None
    assert wait == pytest.approx(0.04)
    assert choose_next(lone, SETTINGS, now=10.05) == ("cold", None)


def test_a_queue_worth_the_swap_or_a_model_that_fits_loads_at_once() -> None:
    assert choose_next([view("cold", 4, 10.0, resident=False)], SETTINGS, 10.0) == ("cold", None)
    fits = [view("cold", 1, 10.0, resident=False, fits=True)]
    assert choose_next(fits, SETTINGS, 10.0) == ("cold", None)


def test_nothing_queued_waits_until_woken() -> None:
    assert choose_next([], SETTINGS, 0.0) == (None, None)


def test_queued_requests_for_a_resident_model_run_before_an_earlier_cold_one(
    tiny_models: dict[str, Path],
) -> None:
    """End to end with real models: 'a' is resident, 'b' would need an eviction."""
    registry = ModelRegistry()
    registry.add("a", tiny_models["llama-a"])
    registry.add("b", tiny_models["llama-b"])
    size = LocalBackend(registry, device="cpu", budget=MemoryBudget(1 << 40))
    one_model = MemoryBudget(int(size.residency.expected_bytes("a") * 1.5))
    size.close()
    backend = LocalBackend(
        registry, device="cpu", budget=one_model, settings=SchedulerSettings(swap_max_wait_s=1.0)
    )
    try:
        backend.load_sync("a")
        gate = threading.Event()
        held = backend.scheduler.call(gate.wait)  # hold the worker while the queues fill
        params = GenerationParams(max_new_tokens=2)
        cold = backend.submit("b", "first, for the cold model", params)
        warm = [backend.submit("a", f"then warm {i}", params) for i in range(3)]
        gate.set()
        held.result(timeout=30)
        warm_results = [h.result_sync(60) for h in warm]
        cold.result_sync(60)
        assert [r.batch_size for r in warm_results] == [3, 3, 3]
        assert backend.residency.stats.events == ["load:a", "evict:a->disk", "load:b"]
        assert all(r.queued_s < cold.result_sync(0).queued_s for r in warm_results)
    finally:
        backend.close()


def test_closing_fails_queued_requests_with_a_clear_error(tiny_models: dict[str, Path]) -> None:
    from skillswitch.exceptions import BackendClosedError, GenerationCancelledError

    backend = LocalBackend.from_folders({"a": tiny_models["llama-a"]}, device="cpu")
    gate = threading.Event()
    backend.scheduler.call(gate.wait)
    queued = backend.submit("a", "never runs", GenerationParams(max_new_tokens=2))
    closer = threading.Thread(target=backend.close)
    closer.start()
    assert queued._done.wait(30), "close() did not fail the queued request"
    gate.set()
    closer.join(30)
    with pytest.raises(GenerationCancelledError, match="closed"):
        queued.result_sync(10)
    with pytest.raises(BackendClosedError, match="closed"):
        backend.submit("a", "too late", GenerationParams(max_new_tokens=2))
