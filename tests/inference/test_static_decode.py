"""Static-cache decoding (``static_decode``) on real tiny models: the same tokens as the dynamic
path, whatever finishes when. On CUDA the step is also replayed as a CUDA graph; on the CPU the
same buffers run eagerly, which is what these tests check."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skillswitch.inference import GenerationParams, LocalBackend, static_loop
from skillswitch.inference.decode_rows import DecodeStats
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.static_decode import StaticBatch, static_decodable
from tests.support.local_backends import CHAT_PROMPTS, dynamic_and_static, generate_together

pytestmark = pytest.mark.anyio

PROMPTS = CHAT_PROMPTS
MODELS = ("llama-a", "qwen-a")


def _backend(tiny_models: dict[str, Path], static: bool) -> LocalBackend:
    return LocalBackend.from_folders(
        {name: tiny_models[name] for name in MODELS},
        device="cpu",
        settings=SchedulerSettings(static_decode=static),
    )


@pytest.fixture(scope="module")
def backends(tiny_models: dict[str, Path]) -> Iterator[dict[bool, LocalBackend]]:
    with dynamic_and_static({name: tiny_models[name] for name in MODELS}) as made:
        yield made


@pytest.fixture(params=["lockstep", "ahead"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Static batches of greedy rows in lockstep, or ahead of the host (on CUDA only, so here
    the CPU stands in: the same path, the copy to the host a no-op)."""
    if request.param == "ahead":
        monkeypatch.setattr(static_loop, "_launches_ahead", lambda device: True)
    return str(request.param)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
async def test_static_decoding_gives_the_dynamic_paths_tokens(
    backends: dict[bool, LocalBackend], model: str, sampled: bool
) -> None:
    base = GenerationParams(max_new_tokens=12, temperature=0.8 if sampled else 0.0, seed=7)
    # Different budgets: rows finish at different steps and the static batch keeps its shape.
    params = [dataclasses.replace(base, max_new_tokens=12 + 5 * i) for i in range(len(PROMPTS))]
    dynamic = await generate_together(backends[False], model, PROMPTS, params)
    static = await generate_together(backends[True], model, PROMPTS, params)
    assert max(r.batch_size for r in static) > 1, "the requests did not share a batch"
    assert [r.token_ids for r in static] == [r.token_ids for r in dynamic]
    assert [r.finish_reason for r in static] == [r.finish_reason for r in dynamic]
    assert [r.text for r in static] == [r.text for r in dynamic]
    stats = backends[True].scheduler.decode_stats[model]
    assert stats.decode_steps > 0
    assert stats.prefill_tokens > 0


async def test_stop_strings_and_streaming_in_a_static_batch(
    backends: dict[bool, LocalBackend],
) -> None:
    free = await backends[True].generate("qwen-a", PROMPTS[0], GenerationParams(max_new_tokens=40))
    assert len(free.text) > 12
    stop = free.text[8:12]
    params = GenerationParams(max_new_tokens=40, stop=[stop])
    handle = backends[True].submit("qwen-a", PROMPTS[0], params)
    other = backends[True].submit("qwen-a", PROMPTS[2], GenerationParams(max_new_tokens=30))
    chunks = [chunk async for chunk in handle.stream()]
    stopped = await handle.result()
    assert stopped.text == free.text[: free.text.index(stop)]
    assert "".join(chunks) == stopped.text
    assert stopped.finish_reason == "stop"
    alone = await backends[False].generate(
        "qwen-a", PROMPTS[2], GenerationParams(max_new_tokens=30)
    )
    assert (await other.result()).token_ids == alone.token_ids


async def test_a_cancelled_row_leaves_the_others_untouched(
    backends: dict[bool, LocalBackend], way: str
) -> None:
    params = GenerationParams(max_new_tokens=200)
    expected = await backends[False].generate("llama-a", PROMPTS[3], params)
    cancelled = backends[True].submit("llama-a", PROMPTS[2], GenerationParams(max_new_tokens=1500))
    survivor = backends[True].submit("llama-a", PROMPTS[3], params)
    stream = cancelled.stream()
    await anext(stream)
    cancelled.cancel()
    async for _ in stream:
        pass
    result = await asyncio.wait_for(cancelled.result(), 60)
    if result.finish_reason != "stop":  # eos may have come before the cancel landed
        assert result.finish_reason == "cancelled"
        assert result.completion_tokens < 1500
    assert (await survivor.result()).token_ids == expected.token_ids


async def test_a_static_batch_refuses_a_wrong_step(tiny_models: dict[str, Path]) -> None:
    backend = _backend(tiny_models, True)
    try:
        loaded = backend.residency.acquire("llama-a")
        try:
            batch = StaticBatch(loaded, [[1, 2, 3], [4, 5]], 2)
            batch.prefill()
            with pytest.raises(ValueError, match="feeds 2 rows, got 1"):
                batch.step([1])
            batch.step([1, 2])
            batch.step([1, 2])
            with pytest.raises(RuntimeError, match="holds 5 positions"):
                batch.step([1, 2])
            assert batch.next_positions() == [5, 4]
            batch.close()
        finally:
            backend.residency.release("llama-a")
    finally:
        backend.close()


class _RefusingCapture:
    """Stands in for torch.cuda's stream and graph calls, which a CPU cannot run: the capture
    fails as an operation a CUDA graph cannot hold makes it fail on a GPU."""

    def __init__(self) -> None:
        self.captures = 0

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(wait_stream=lambda other: None)

    def graph(self, graph: Any, **kwargs: Any) -> Any:
        self.captures += 1
        assert kwargs.get("capture_error_mode") == "thread_local"
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")


async def test_a_step_that_cannot_be_captured_decodes_uncaptured(
    backends: dict[bool, LocalBackend],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import torch

    from skillswitch.inference import static_decode

    cuda = _RefusingCapture()
    monkeypatch.setattr(static_decode, "_captures_graphs", lambda device: True)
    monkeypatch.setattr(static_decode, "_uncapturable", {})
    monkeypatch.setattr(torch.cuda, "Stream", cuda.stream)
    monkeypatch.setattr(torch.cuda, "current_stream", cuda.stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", object)
    monkeypatch.setattr(torch.cuda, "graph", cuda.graph)
    params = [GenerationParams(max_new_tokens=9 + 4 * i) for i in range(len(PROMPTS))]
    expected = await generate_together(backends[False], "qwen-a", PROMPTS, params)
    earlier = backends[True].scheduler.decode_stats.get("qwen-a")
    before = dataclasses.replace(earlier) if earlier else DecodeStats()
    with caplog.at_level(logging.WARNING, logger="skillswitch.inference.static_decode"):
        first = await generate_together(backends[True], "qwen-a", PROMPTS, params)
        second = await generate_together(backends[True], "qwen-a", PROMPTS, params)
    assert [r.token_ids for r in first] == [r.token_ids for r in expected]
    assert [r.token_ids for r in second] == [r.token_ids for r in expected]
    assert cuda.captures == 1, "the class's later batches tried to capture again"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "Qwen2ForCausalLM" in warnings[0]
    assert "operation not permitted" in warnings[0]
    loaded = backends[True].residency.acquire("qwen-a")
    try:
        assert "RuntimeError: CUDA error" in (static_decode.capture_refused(loaded.model) or "")
    finally:
        backends[True].residency.release("qwen-a")
    after = backends[True].scheduler.decode_stats["qwen-a"]
    assert after.decode_steps > before.decode_steps
    assert after.graph_steps == before.graph_steps == 0


def test_sliding_window_models_decode_dynamically() -> None:
    def loaded(**config: Any) -> Any:
        return SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(**config)))

    assert static_decodable(loaded(layer_types=["full_attention", "full_attention"]))
    assert not static_decodable(loaded(layer_types=["full_attention", "sliding_attention"]))
    assert static_decodable(loaded(sliding_window=4096, use_sliding_window=False))
    assert not static_decodable(loaded(sliding_window=4096, use_sliding_window=True))
    assert not static_decodable(loaded(sliding_window=4096))  # Mistral-style
    assert not static_decodable(loaded(is_encoder_decoder=True))


def test_the_config_reaches_the_scheduler_settings() -> None:
    from skillswitch.config.models import InferenceConfig

    config = InferenceConfig.model_validate(
        {"scheduler": {"static_decode": True, "join_running": False}}
    )
    settings = SchedulerSettings(**config.scheduler.model_dump())
    assert settings.static_decode is True
    assert settings.join_running is False
    assert SchedulerSettings().static_decode is False


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
async def test_a_static_batch_drops_its_finished_rows_and_decodes_the_same(
    backends: dict[bool, LocalBackend], sampled: bool, way: str
) -> None:
    # Three rows end after 3 tokens; the fourth has 45 to go: the batch shrinks to that row
    # (ahead: with its next step, launched before the three were seen to end, under way).
    base = GenerationParams(max_new_tokens=3, temperature=0.8 if sampled else 0.0, seed=11)
    params = [base, base, dataclasses.replace(base, max_new_tokens=48), base]
    expected = await generate_together(backends[False], "llama-a", PROMPTS, params)
    earlier = backends[True].scheduler.decode_stats.get("llama-a")
    before = dataclasses.replace(earlier) if earlier else DecodeStats()
    results = await generate_together(backends[True], "llama-a", PROMPTS, params)
    assert [r.token_ids for r in results] == [r.token_ids for r in expected]
    assert [r.completion_tokens for r in results] == [3, 3, 48, 3]
    after = backends[True].scheduler.decode_stats["llama-a"]
    assert after.compactions == before.compactions + 1
    # 47 steps: 2 with four rows, 45 with the one row left (not 47 x 4 rows).
    assert after.decode_steps - before.decode_steps == 47
    assert after.decode_tokens - before.decode_tokens == 2 * 4 + 45


async def test_a_batch_with_few_steps_to_go_keeps_its_shape(
    backends: dict[bool, LocalBackend],
) -> None:
    params = [GenerationParams(max_new_tokens=n) for n in (3, 3, 20, 3)]
    earlier = backends[True].scheduler.decode_stats.get("llama-a")
    before = earlier.compactions if earlier else 0
    await generate_together(backends[True], "llama-a", PROMPTS, params)
    assert backends[True].scheduler.decode_stats["llama-a"].compactions == before


async def test_keep_rows_refuses_rows_it_does_not_have(tiny_models: dict[str, Path]) -> None:
    backend = _backend(tiny_models, True)
    try:
        loaded = backend.residency.acquire("llama-a")
        try:
            batch = StaticBatch(loaded, [[1, 2, 3], [4, 5], [6]], 4)
            batch.prefill()
            for wrong in ([], [0, 0], [3]):
                with pytest.raises(ValueError, match=r"distinct rows of 0\.\.2"):
                    batch.keep_rows(wrong)
            batch.step([1, 2, 3])
            batch.keep_rows([2, 0])
            assert batch.rows == 2
            assert batch.next_positions() == [2, 4]
            assert batch.step([7, 8]).shape[0] == 2
            batch.close()
        finally:
            backend.residency.release("llama-a")
    finally:
        backend.close()
