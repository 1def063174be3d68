"""Static batches decoded ahead of the host (on CUDA, greedy rows): each step launched on the
device's argmax of the one before, the host reading that one's tokens while the next runs.

On the CPU nothing runs apart from the host, so these tests let the loop run ahead there (it
takes the same path, with the copy to the host a no-op) and check what matters wherever it
runs: the same tokens, texts and finishes as the dynamic path, a stop seen one step late
without a wrong token, and the steps counted. tests/inference/test_static_decode.py runs its
cancel and compaction tests both ways."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skillswitch.inference import GenerationParams, LocalBackend, static_loop
from skillswitch.inference.decode_rows import DecodeStats
from skillswitch.inference.policy import SchedulerSettings
from tests.support.local_backends import CHAT_PROMPTS, dynamic_and_static, generate_together

pytestmark = pytest.mark.anyio

PROMPTS = CHAT_PROMPTS
MODELS = ("llama-a", "qwen-a")


@pytest.fixture(scope="module")
def backends(tiny_models: dict[str, Path]) -> Iterator[dict[bool, LocalBackend]]:
    with dynamic_and_static({name: tiny_models[name] for name in MODELS}) as made:
        yield made


@pytest.fixture
def ahead(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Static batches run ahead on the CPU; the list counts the batches that did."""
    ran: list[int] = []
    decode_ahead = static_loop._decode_ahead

    def counted(*args: Any, **kwargs: Any) -> None:
        ran.append(1)
        decode_ahead(*args, **kwargs)

    monkeypatch.setattr(static_loop, "_launches_ahead", lambda device: True)
    monkeypatch.setattr(static_loop, "_decode_ahead", counted)
    return ran


def _stats(backend: LocalBackend, model: str) -> DecodeStats:
    earlier = backend.scheduler.decode_stats.get(model)
    return dataclasses.replace(earlier) if earlier else DecodeStats()


@pytest.mark.parametrize("model", MODELS)
async def test_decoding_ahead_gives_the_dynamic_paths_tokens(
    backends: dict[bool, LocalBackend], ahead: list[int], model: str
) -> None:
    # Different budgets: rows finish at different steps, known before their last token.
    params = [GenerationParams(max_new_tokens=12 + 5 * i) for i in range(len(PROMPTS))]
    expected = await generate_together(backends[False], model, PROMPTS, params)
    before = _stats(backends[True], model)
    results = await generate_together(backends[True], model, PROMPTS, params)
    assert ahead, "the batch did not decode ahead"
    assert max(r.batch_size for r in results) > 1, "the requests did not share a batch"
    assert [r.token_ids for r in results] == [r.token_ids for r in expected]
    assert [r.text for r in results] == [r.text for r in expected]
    assert [r.finish_reason for r in results] == [r.finish_reason for r in expected]
    after = backends[True].scheduler.decode_stats[model]
    # Budgets are known ahead: no step is spent in vain (the longest row's 26 after its first).
    assert after.decode_steps - before.decode_steps == max(r.completion_tokens for r in results) - 1
    assert after.decode_s > before.decode_s


async def test_a_stop_string_is_seen_one_step_late_without_a_wrong_token(
    backends: dict[bool, LocalBackend], ahead: list[int]
) -> None:
    free = await backends[False].generate("qwen-a", PROMPTS[0], GenerationParams(max_new_tokens=40))
    assert len(free.text) > 12
    stop = free.text[8:12]
    params = GenerationParams(max_new_tokens=40, stop=[stop])
    expected = await backends[False].generate("qwen-a", PROMPTS[0], params)
    before = _stats(backends[True], "qwen-a")
    handle = backends[True].submit("qwen-a", PROMPTS[0], params)
    chunks = [chunk async for chunk in handle.stream()]
    stopped = await handle.result()
    assert ahead
    assert stopped.text == expected.text == free.text[: free.text.index(stop)]
    assert "".join(chunks) == stopped.text
    assert stopped.token_ids == expected.token_ids
    assert stopped.finish_reason == "stop"
    after = backends[True].scheduler.decode_stats["qwen-a"]
    # The stop was not known in advance: the step launched on the stopping token ran in vain.
    assert after.decode_steps - before.decode_steps == stopped.completion_tokens
    assert after.decode_tokens - before.decode_tokens == stopped.completion_tokens - 1


def test_only_batches_of_greedy_rows_free_of_grammars_run_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def row(temperature: float = 0.0, grammar: Any = None) -> Any:
        params = GenerationParams(max_new_tokens=4, temperature=temperature, seed=1)
        return SimpleNamespace(job=SimpleNamespace(params=params, grammar=grammar))

    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    cuda: Any = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    assert static_loop._runs_ahead(cuda, [row(), row()])
    assert not static_loop._runs_ahead(cuda, [row(), row(temperature=0.7)])
    assert not static_loop._runs_ahead(cuda, [row(), row(grammar=object())])
    assert not static_loop._runs_ahead(cpu, [row()])  # type: ignore[arg-type]


async def test_decode_ahead_false_keeps_the_steps_in_lockstep(
    tiny_models: dict[str, Path], ahead: list[int]
) -> None:
    from skillswitch.config.models import InferenceConfig

    config = InferenceConfig.model_validate(
        {"scheduler": {"static_decode": True, "decode_ahead": False}}
    )
    settings = SchedulerSettings(**config.scheduler.model_dump())
    assert settings.decode_ahead is False
    assert SchedulerSettings().decode_ahead is True
    backend = LocalBackend.from_folders(
        {"llama-a": tiny_models["llama-a"]}, device="cpu", settings=settings
    )
    try:
        params = [GenerationParams(max_new_tokens=6)] * 2
        results = await generate_together(backend, "llama-a", PROMPTS[:2], params)
    finally:
        backend.close()
    assert [r.completion_tokens for r in results] == [6, 6]
    assert not ahead, "decode_ahead: false ran ahead"
