"""The static decode step compiled with ``torch.compile`` (``scheduler.compile_decode``) on real
tiny models: inductor really compiles each architecture's step here (on the CPU, tens of seconds
the first time), and the tokens must equal the dynamic path's, greedy and seeded. A compiler that
fails, or one past the recompile limit, leaves the model decoding eagerly, with one warning
and the same tokens."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillswitch.config.models import InferenceConfig
from skillswitch.inference import GenerationParams, LocalBackend, step_compiler
from skillswitch.inference.decode_rows import DecodeStats
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.static_decode import StaticBatch
from skillswitch.inference.step_compiler import compile_refused
from tests.support.local_backends import CHAT_PROMPTS, generate_together

pytestmark = pytest.mark.anyio

PROMPTS = CHAT_PROMPTS[:3]
MODELS = ("llama-a", "qwen-a")


@pytest.fixture(scope="module")
def backends(tiny_models: dict[str, Path]) -> Iterator[dict[str, LocalBackend]]:
    folders = {name: tiny_models[name] for name in MODELS}
    made = {
        "dynamic": LocalBackend.from_folders(folders, device="cpu"),
        "compiled": LocalBackend.from_folders(
            folders,
            device="cpu",
            settings=SchedulerSettings(static_decode=True, compile_decode=True),
        ),
    }
    yield made
    for backend in made.values():
        backend.close()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
async def test_compiled_steps_give_the_dynamic_paths_tokens(
    backends: dict[str, LocalBackend], model: str, sampled: bool
) -> None:
    base = GenerationParams(max_new_tokens=10, temperature=0.8 if sampled else 0.0, seed=3)
    params = [dataclasses.replace(base, max_new_tokens=10 + 4 * i) for i in range(len(PROMPTS))]
    dynamic = await generate_together(backends["dynamic"], model, PROMPTS, params)
    compiled = await generate_together(backends["compiled"], model, PROMPTS, params)
    assert [r.token_ids for r in compiled] == [r.token_ids for r in dynamic]
    assert [r.finish_reason for r in compiled] == [r.finish_reason for r in dynamic]
    stats = backends["compiled"].scheduler.decode_stats[model]
    assert stats.decode_steps > 0
    assert stats.compiled_steps == stats.decode_steps, "some steps did not run compiled"
    loaded = backends["compiled"].residency.acquire(model)
    try:
        assert compile_refused(loaded.model) is None
    finally:
        backends["compiled"].residency.release(model)


async def test_a_compiled_batch_that_drops_its_finished_rows_decodes_the_same(
    backends: dict[str, LocalBackend],
) -> None:
    # Two rows end after 2 tokens, the third has 38 to go: the batch shrinks to one row and
    # its step runs compiled for that size (dynamo compiles a single row apart).
    params = [GenerationParams(max_new_tokens=n) for n in (2, 2, 40)]
    dynamic = await generate_together(backends["dynamic"], "qwen-a", PROMPTS, params)
    earlier = backends["compiled"].scheduler.decode_stats.get("qwen-a")
    before = dataclasses.replace(earlier) if earlier else DecodeStats()
    compiled = await generate_together(backends["compiled"], "qwen-a", PROMPTS, params)
    assert [r.token_ids for r in compiled] == [r.token_ids for r in dynamic]
    after = backends["compiled"].scheduler.decode_stats["qwen-a"]
    assert after.compactions == before.compactions + 1
    assert after.compiled_steps - before.compiled_steps == after.decode_steps - before.decode_steps


async def test_a_compiler_that_fails_leaves_the_model_decoding_eagerly(
    backends: dict[str, LocalBackend], caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken_compiler(graph: Any, example_inputs: Any) -> Any:
        calls.append(graph)
        raise RuntimeError("no compiler here (a test's)")

    backend = backends["dynamic"]
    loaded = backend.residency.acquire("llama-a")
    try:
        prompts = [[5, 6, 7, 8], [9, 10]]
        plain = StaticBatch(loaded, prompts, 6)
        expected = _greedy(plain, 6)
        with caplog.at_level(logging.WARNING, logger="skillswitch.inference.step_compiler"):
            batch = StaticBatch(loaded, prompts, 6, compiled=True, backend=broken_compiler)
            assert batch.compiled
            assert _greedy(batch, 6) == expected
            assert not batch.compiled
            again = StaticBatch(loaded, prompts, 6, compiled=True, backend=broken_compiler)
            assert not again.compiled  # refused for the class: not tried again
            assert _greedy(again, 6) == expected
        assert len(calls) == 1
        reason = compile_refused(loaded.model, broken_compiler)
        assert reason == "RuntimeError: no compiler here (a test's)"
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1
        assert "LlamaForCausalLM could not be compiled" in warnings[0]
        assert "no compiler here" in warnings[0]
        assert compile_refused(loaded.model) is None  # inductor itself is not refused
    finally:
        backend.residency.release("llama-a")


def test_past_the_recompile_limit_the_model_decodes_eagerly(
    backends: dict[str, LocalBackend],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past its limit dynamo would silently run the step uncompiled; here that is a refusal.
    monkeypatch.setattr(step_compiler, "RECOMPILE_LIMIT", 1)
    monkeypatch.setattr(step_compiler, "_refused", {})  # the refusal ends with the test
    backend = backends["dynamic"]
    loaded = backend.residency.acquire("qwen-a")
    try:
        expected = {
            rows: _greedy(StaticBatch(loaded, [[5, 6, 7], [8]][:rows], 4), 4) for rows in (2, 1)
        }
        with caplog.at_level(logging.WARNING, logger="skillswitch.inference.step_compiler"):
            for rows in (2, 1):  # a batch of one row is compiled apart: the limit is hit
                batch = StaticBatch(
                    loaded, [[5, 6, 7], [8]][:rows], 4, compiled=True, backend="eager"
                )
                assert _greedy(batch, 4) == expected[rows]
        reason = compile_refused(loaded.model, "eager")
        assert reason is not None
        assert reason.startswith("FailOnRecompileLimitHit")
        assert [r.getMessage() for r in caplog.records if "Qwen2ForCausalLM" in r.getMessage()]
        assert not StaticBatch(loaded, [[5]], 2, compiled=True, backend="eager").compiled
    finally:
        backend.residency.release("qwen-a")


def _greedy(batch: StaticBatch, steps: int) -> list[list[int]]:
    """Greedy tokens of a few steps, as the scheduler runs them (in inference mode)."""
    import torch

    out = []
    with torch.inference_mode():
        logits = batch.prefill()
        for _ in range(steps - 1):
            tokens = logits.argmax(-1).tolist()
            out.append(tokens)
            logits = batch.step(tokens)
    batch.close()
    return out


def test_compile_decode_needs_static_decode() -> None:
    with pytest.raises(ValueError, match="set static_decode too"):
        SchedulerSettings(compile_decode=True)
    with pytest.raises(ValueError, match="set static_decode: true as well"):
        InferenceConfig.model_validate({"scheduler": {"compile_decode": True}})
    config = InferenceConfig.model_validate(
        {"scheduler": {"static_decode": True, "compile_decode": True}}
    )
    settings = SchedulerSettings(**config.scheduler.model_dump())
    assert settings.compile_decode is True
    assert SchedulerSettings().compile_decode is False
