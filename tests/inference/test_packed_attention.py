"""Decode attention with grouped query heads packed (``skillswitch_sdpa``): chosen for grouped
models when they load, and the same logits as transformers' SDPA attention, in the dynamic and
static paths, run eagerly and traced by dynamo (where transformers copies the KV cache per head)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skillswitch.inference.attention import ATTENTION_NAME
from skillswitch.inference.folders import inspect_folder
from skillswitch.inference.kv_cache import cache_argument, returned_cache
from skillswitch.inference.loading import LoadedModel, load_model
from skillswitch.inference.static_decode import StaticBatch
from skillswitch.inference.tiny import ModelShape, build_model

# Different lengths: the rows are left-padded and the mask matters.
PROMPTS = [[5, 9, 14, 3, 8, 21, 7], [11, 4, 6], [30, 2, 9, 17, 5]]


def _load(folder: Path, *, sdpa: bool = False) -> LoadedModel:
    loaded = load_model(folder.name, inspect_folder(folder), "cpu", "float32")
    if sdpa:
        loaded.model.set_attn_implementation("sdpa")
    return loaded


def test_a_grouped_query_model_loads_with_packed_attention(tiny_models: dict[str, Path]) -> None:
    loaded = _load(tiny_models["qwen-a"])
    config = loaded.model.config
    assert config.num_key_value_heads < config.num_attention_heads
    assert config._attn_implementation == ATTENTION_NAME


def test_a_model_without_grouped_heads_keeps_sdpa(tmp_path: Path) -> None:
    folder = build_model(tmp_path / "mha", arch="llama", shape=ModelShape(64, 128, 2, 4, 4))
    assert _load(folder).model.config._attn_implementation == "sdpa"


def _static_logits(loaded: LoadedModel, compiled: bool) -> list[Any]:
    import torch

    with torch.inference_mode():
        batch = StaticBatch(loaded, PROMPTS, 4, compiled=compiled, backend="eager")
        logits = [batch.prefill()]
        for _ in range(3):
            logits.append(batch.step(logits[-1].argmax(-1).tolist()).clone())
        assert batch.compiled == compiled
        batch.close()
    return logits


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "traced"])
def test_static_steps_match_transformers_sdpa(tiny_models: dict[str, Path], compiled: bool) -> None:
    import torch

    ours = _static_logits(_load(tiny_models["qwen-a"]), compiled)
    theirs = _static_logits(_load(tiny_models["qwen-a"], sdpa=True), compiled)
    for step, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5, msg=f"step {step}")


def test_dynamic_steps_match_transformers_sdpa(tiny_models: dict[str, Path]) -> None:
    import torch

    def steps(loaded: LoadedModel) -> list[Any]:
        tokenizer = loaded.tokenizer
        encoded = tokenizer.pad({"input_ids": PROMPTS}, return_tensors="pt")
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        out = loaded.model(input_ids=ids, attention_mask=mask, use_cache=True)
        logits, cache = [out.logits[:, -1]], returned_cache(out)
        for _ in range(3):
            ids = logits[-1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, mask.new_ones((len(PROMPTS), 1))], dim=1)
            out = loaded.model(
                input_ids=ids, attention_mask=mask, **cache_argument(loaded.model, cache)
            )
            logits.append(out.logits[:, -1])
            cache = returned_cache(out)
        return logits

    with torch.inference_mode():
        ours = steps(_load(tiny_models["llama-a"]))
        theirs = steps(_load(tiny_models["llama-a"], sdpa=True))
    for step, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5, msg=f"step {step}")
