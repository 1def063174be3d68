"""``inference.models[].preload``: models loaded at start-up through the config path users take
(``build_backend``), and with ``compile_decode`` their decode steps compiled before the first
request; a preload that cannot fit is a config error naming the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skillswitch.config.models import InferenceConfig
from skillswitch.exceptions import ConfigError
from skillswitch.inference import GenerationParams
from skillswitch.inference.configured import build_backend
from skillswitch.inference.folders import inspect_folder
from skillswitch.inference.step_compiler import compiled_variants


def _config(tiny_models: dict[str, Path], **extra: Any) -> InferenceConfig:
    models = [
        {"name": "llama-a", "path": str(tiny_models["llama-a"]), "preload": True},
        {"name": "qwen-a", "path": str(tiny_models["qwen-a"]), "preload": True},
        {"name": "llama-b", "path": str(tiny_models["llama-b"])},
    ]
    return InferenceConfig.model_validate({"device": "cpu", "models": models, **extra})


def test_preloaded_models_are_resident_before_any_request(tiny_models: dict[str, Path]) -> None:
    backend = build_backend(_config(tiny_models))
    try:
        assert sorted(r.name for r in backend.resident()) == ["llama-a", "qwen-a"]
        assert backend.residency.stats.loads == 2
        assert backend.scheduler.decode_stats == {}  # nothing generated without compile_decode
    finally:
        backend.close()


def test_preloading_compiles_each_models_decode_step(tiny_models: dict[str, Path]) -> None:
    scheduler = {"static_decode": True, "compile_decode": True}
    backend = build_backend(_config(tiny_models, scheduler=scheduler))
    try:
        for name in ("llama-a", "qwen-a"):
            stats = backend.scheduler.decode_stats[name]
            assert stats.compiled_steps == stats.decode_steps > 0
        assert backend.scheduler.stats.largest_batch == 3  # a pair, three rows, one row
        before = backend.scheduler.decode_stats["qwen-a"].compiled_steps
        result = backend.generate_sync("qwen-a", "Hello there", GenerationParams(max_new_tokens=4))
        assert result.completion_tokens == 4
        assert backend.scheduler.decode_stats["qwen-a"].compiled_steps == before + 3
        # Batches of sizes not seen in the warm-up run the code compiled then: no compile waits.
        loaded = backend.residency.acquire("qwen-a")
        backend.residency.release("qwen-a")
        variants = compiled_variants(loaded.model)
        for rows in (5, 4):
            handles = backend.scheduler.submit_together(
                "qwen-a", ["Hi"] * rows, GenerationParams(max_new_tokens=3), stream=False
            )
            assert [h.result_sync(60).batch_size for h in handles] == [rows] * rows
        assert compiled_variants(loaded.model) == variants
    finally:
        backend.close()


def test_a_preload_beyond_the_budget_is_a_config_error(tiny_models: dict[str, Path]) -> None:
    largest = max(inspect_folder(tiny_models[n]).bytes_as(4) for n in ("llama-a", "qwen-a"))
    # Room for either model alone (float32 on the CPU), not for both.
    config = _config(tiny_models, memory={"device_gb": 1.5 * largest / 2**30})
    with pytest.raises(ConfigError) as caught:
        build_backend(config)
    message = str(caught.value)
    assert "inference.models" in message
    assert "preloading llama-a, qwen-a needs" in message
    assert "raise inference.memory.device_gb" in message
