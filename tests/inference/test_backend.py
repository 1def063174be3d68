"""The local backend on real (tiny, random-weight) models loaded through the users' code path."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillswitch.exceptions import (
    ModelFolderError,
    ModelTooLargeError,
    PromptTooLongError,
    UnknownModelError,
)
from skillswitch.inference import (
    GenerationParams,
    LocalBackend,
    MemoryBudget,
    ModelRegistry,
    WrongModelKindError,
)

pytestmark = pytest.mark.anyio

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short poem about the sea, the wind and the sky."},
    ],
    [{"role": "user", "content": "Solve for x: 3x + 5 = 20"}],
    [{"role": "user", "content": "def add(a, b): return a + b"}],
]


@pytest.fixture(scope="module")
def backend(tiny_models: dict[str, Path]) -> Iterator[LocalBackend]:
    backend = LocalBackend.from_folders(
        {name: tiny_models[name] for name in ("llama-a", "llama-b", "qwen-a", "bert-a")},
        device="cpu",
    )
    yield backend
    backend.close()


@pytest.mark.parametrize("model", ["llama-a", "qwen-a"])
async def test_greedy_batched_outputs_equal_one_at_a_time(
    backend: LocalBackend, model: str
) -> None:
    params = GenerationParams(max_new_tokens=24)
    alone = [backend.generate_sync(model, prompt, params) for prompt in PROMPTS]
    handles = [backend.submit(model, prompt, params) for prompt in PROMPTS]
    together = [await handle.result() for handle in handles]
    assert [r.batch_size for r in alone] == [1] * len(PROMPTS)
    assert max(r.batch_size for r in together) > 1, "the requests did not share a batch"
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert [r.text for r in together] == [r.text for r in alone]
    assert all(r.completion_tokens > 0 for r in alone)


async def test_streamed_chunks_add_up_to_the_result(backend: LocalBackend) -> None:
    params = GenerationParams(max_new_tokens=30)
    handle = backend.submit("llama-b", PROMPTS[2], params)
    chunks = [chunk async for chunk in handle.stream()]
    result = await handle.result()
    assert len(chunks) > 1
    assert "".join(chunks) == result.text
    assert result.finish_reason in {"length", "stop"}


async def test_stop_strings_end_the_text_and_are_never_streamed(backend: LocalBackend) -> None:
    free = backend.generate_sync("qwen-a", PROMPTS[0], GenerationParams(max_new_tokens=40))
    text = free.text
    assert len(text) > 12
    stop = text[8:12]
    cut = text.index(stop)
    params = GenerationParams(max_new_tokens=40, stop=[stop, "never appears \x00"])
    handle = backend.submit("qwen-a", PROMPTS[0], params)
    chunks = [chunk async for chunk in handle.stream()]
    stopped = await handle.result()
    assert stopped.text == text[:cut]
    assert "".join(chunks) == stopped.text
    assert stopped.finish_reason == "stop"


async def test_max_new_tokens_bounds_the_answer(backend: LocalBackend) -> None:
    result = await backend.generate("llama-a", PROMPTS[1], GenerationParams(max_new_tokens=3))
    assert result.completion_tokens <= 3
    if result.completion_tokens == 3:
        assert result.finish_reason == "length"


async def test_seeds_make_sampling_reproducible_whatever_shares_the_batch(
    backend: LocalBackend,
) -> None:
    sampled = GenerationParams(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7)
    alone = await backend.generate("llama-a", PROMPTS[0], sampled)
    handles = [backend.submit("llama-a", PROMPTS[0], sampled)] + [
        backend.submit("llama-a", prompt, GenerationParams(max_new_tokens=20, temperature=0.8))
        for prompt in PROMPTS[1:]
    ]
    results = [await h.result() for h in handles]
    assert results[0].batch_size > 1
    assert results[0].token_ids == alone.token_ids
    other_seed = await backend.generate(
        "llama-a", PROMPTS[0], GenerationParams(max_new_tokens=20, temperature=1.0, seed=8)
    )
    assert other_seed.token_ids != alone.token_ids


async def test_cancelling_stops_a_running_generation(backend: LocalBackend) -> None:
    # A long answer (well under the tiny models' 2048 positions); eos may end it sooner.
    handle = backend.submit("llama-b", PROMPTS[0], GenerationParams(max_new_tokens=1500))
    stream = handle.stream()
    await anext(stream)
    handle.cancel()
    async for _ in stream:
        pass
    result = await handle.result()
    if result.finish_reason != "stop":  # it may have met eos before the cancel landed
        assert result.finish_reason == "cancelled"
        assert result.completion_tokens < 1500


async def test_cancelling_a_queued_request_never_runs_it(backend: LocalBackend) -> None:
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Hold the worker thread so the request stays queued.
    blocker = backend.scheduler.call(lambda: asyncio.run_coroutine_threadsafe(gate.wait(), loop))
    handle = backend.submit("qwen-a", PROMPTS[1], GenerationParams(max_new_tokens=5))
    handle.cancel()
    gate.set()
    blocker.result(timeout=10)
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens == 0


async def test_task_cancellation_cancels_the_generation(backend: LocalBackend) -> None:
    handle = backend.submit("llama-a", PROMPTS[2], GenerationParams(max_new_tokens=1500))
    task = asyncio.create_task(handle.result())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handle.cancelled
    await asyncio.to_thread(handle._done.wait, 60)
    assert handle.done


async def test_embeddings_are_unit_vectors_and_deterministic(backend: LocalBackend) -> None:
    first = await backend.embed("bert-a", ["hello world", "the quick brown fox", "hello world"])
    assert len(first.vectors) == 3
    assert len(first.vectors[0]) == 64
    for vector in first.vectors:
        assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)
    assert first.vectors[0] == pytest.approx(first.vectors[2], abs=1e-6)
    assert first.vectors[0] != pytest.approx(first.vectors[1], abs=1e-3)
    assert first.prompt_tokens > 3


def test_wrong_kind_and_unknown_models_are_refused_with_the_fix(backend: LocalBackend) -> None:
    with pytest.raises(WrongModelKindError, match="embedding model"):
        backend.submit("bert-a", PROMPTS[0])
    with pytest.raises(WrongModelKindError, match="chat model"):
        backend.embed_sync("llama-a", ["x"])
    with pytest.raises(UnknownModelError, match="did you mean 'llama-b'"):
        backend.submit("llama_b", PROMPTS[0])
    with pytest.raises(ValueError, match="messages is empty"):
        backend.submit("llama-a", [])
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=-1)


def test_a_prompt_longer_than_the_model_takes_fails_alone(backend: LocalBackend) -> None:
    long = [{"role": "user", "content": "the quick brown fox " * 800}]
    with pytest.raises(PromptTooLongError, match="shorten"):
        backend.generate_sync("llama-a", long, GenerationParams(max_new_tokens=2), timeout=60)
    ok = backend.generate_sync("llama-a", PROMPTS[1], GenerationParams(max_new_tokens=2))
    assert ok.completion_tokens >= 1


def test_a_raw_completion_prompt_needs_no_chat_template(backend: LocalBackend) -> None:
    result = backend.generate_sync("qwen-a", "Once upon a time", GenerationParams(max_new_tokens=5))
    assert result.prompt_tokens > 0


# --- memory budget -----------------------------------------------------------------------------


def test_least_recently_used_model_is_evicted_under_the_budget(
    tiny_models: dict[str, Path],
) -> None:
    registry = ModelRegistry()
    for name in ("llama-a", "llama-b", "qwen-a"):
        registry.add(name, tiny_models[name])
    probe = LocalBackend(registry, device="cpu", budget=MemoryBudget(1 << 40))
    sizes = {name: probe.residency.expected_bytes(name) for name in registry.names()}
    probe.close()
    budget = MemoryBudget(sizes["llama-a"] + sizes["llama-b"] + sizes["qwen-a"] // 2)
    backend = LocalBackend(registry, device="cpu", budget=budget)
    try:
        short = GenerationParams(max_new_tokens=2)
        for name in ("llama-a", "llama-b", "llama-a", "qwen-a", "llama-b"):
            backend.generate_sync(name, PROMPTS[1], short)
        events = backend.residency.stats.events
        assert events == [
            "load:llama-a",
            "load:llama-b",
            "evict:llama-b->disk",  # llama-a was used more recently
            "load:qwen-a",
            "evict:llama-a->disk",
            "load:llama-b",
        ]
        resident = {r.name for r in backend.resident()}
        assert resident == {"qwen-a", "llama-b"}
        assert sum(r.nbytes for r in backend.resident()) <= budget.device_bytes
        assert backend.unload_sync("qwen-a")
        assert not backend.unload_sync("qwen-a")
    finally:
        backend.close()


def test_evicted_models_wait_in_the_host_tier_and_come_back_unchanged(
    tiny_models: dict[str, Path],
) -> None:
    registry = ModelRegistry()
    for name in ("llama-a", "qwen-a"):
        registry.add(name, tiny_models[name])
    size = max(registry.get(n).info.stored_bytes for n in registry.names())
    one_and_a_half = int(size * 1.5)
    backend = LocalBackend(
        registry, device="cpu", budget=MemoryBudget(one_and_a_half, one_and_a_half), host_tier=True
    )
    try:
        params = GenerationParams(max_new_tokens=6)
        first = {n: backend.generate_sync(n, PROMPTS[0], params) for n in ("llama-a", "qwen-a")}
        again = {n: backend.generate_sync(n, PROMPTS[0], params) for n in ("llama-a", "qwen-a")}
        assert backend.residency.stats.events == [
            "load:llama-a",
            "evict:llama-a->host",
            "load:qwen-a",
            "evict:qwen-a->host",  # making room never drops the model that is coming back
            "promote:llama-a",
            "evict:llama-a->host",
            "promote:qwen-a",
        ]
        assert {n: r.token_ids for n, r in again.items()} == {
            n: r.token_ids for n, r in first.items()
        }
        locations = {r.name: r.location for r in backend.resident()}
        assert locations == {"qwen-a": "device", "llama-a": "host"}
    finally:
        backend.close()


def test_loaded_size_matches_the_size_read_from_the_folder(tiny_models: dict[str, Path]) -> None:
    backend = LocalBackend.from_folders({"llama-a": tiny_models["llama-a"]}, device="cpu")
    try:
        backend.load_sync("llama-a")
        (resident,) = backend.resident()
        expected = backend.residency.expected_bytes("llama-a")
        # Loaded models also hold buffers the folder does not store (rotary frequencies).
        assert expected <= resident.nbytes <= expected * 1.01
    finally:
        backend.close()


def test_a_model_larger_than_the_budget_is_refused_at_start(tiny_models: dict[str, Path]) -> None:
    registry = ModelRegistry()
    registry.add("llama-a", tiny_models["llama-a"])
    with pytest.raises(ModelTooLargeError, match=r"llama-a.*inference\.memory\.device_gb"):
        LocalBackend(registry, device="cpu", budget=MemoryBudget(1000))


# --- model folders -------------------------------------------------------------------------------


def test_missing_and_incomplete_folders_name_what_is_wrong(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    registry = ModelRegistry()
    with pytest.raises(ModelFolderError, match="does not exist"):
        registry.add("x", tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFolderError, match=r"no config\.json"):
        registry.add("x", empty)
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_models["llama-a"], no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(ModelFolderError, match="no tokenizer"):
        registry.add("x", no_tokenizer)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_models["llama-a"], no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"no \*\.safetensors"):
        registry.add("x", no_weights)
    bad_config = tmp_path / "bad-config"
    shutil.copytree(tiny_models["llama-a"], bad_config)
    (bad_config / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        registry.add("x", bad_config)


def test_corrupt_weights_are_caught_before_loading(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_models["llama-a"], truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelFolderError, match="truncated"):
        ModelRegistry().add("x", truncated)
    garbage = tmp_path / "garbage"
    shutil.copytree(tiny_models["llama-a"], garbage)
    (garbage / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ModelFolderError, match="corrupt"):
        ModelRegistry().add("x", garbage)


def test_a_folder_that_breaks_at_load_time_fails_its_requests_clearly(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["llama-a"], broken)
    config = json.loads((broken / "config.json").read_text(encoding="utf-8"))
    config["hidden_size"] = 96  # weights no longer match the config
    (broken / "config.json").write_text(json.dumps(config), encoding="utf-8")
    backend = LocalBackend.from_folders({"broken": broken}, device="cpu")
    try:
        with pytest.raises(ModelFolderError, match="broken"):
            backend.generate_sync("broken", PROMPTS[1], GenerationParams(max_new_tokens=2))
    finally:
        backend.close()


# --- continuous batching -------------------------------------------------------------------------


async def test_a_request_joins_the_running_batch_and_decodes_as_it_would_alone(
    backend: LocalBackend,
) -> None:
    long, short = GenerationParams(max_new_tokens=400), GenerationParams(max_new_tokens=12)
    solo = [backend.generate_sync("qwen-a", p, long) for p in PROMPTS]
    first = max(range(len(PROMPTS)), key=lambda i: solo[i].completion_tokens)
    assert solo[first].completion_tokens > 100, "no prompt gives a long enough answer"
    second = PROMPTS[(first + 1) % len(PROMPTS)]
    second_alone = backend.generate_sync("qwen-a", second, short)

    running = backend.submit("qwen-a", PROMPTS[first], long)
    chunks = running.stream()
    await anext(chunks)  # the first batch is generating
    joiner = await backend.generate("qwen-a", second, short)
    assert not running.done, "the joiner waited for the running batch to end"
    rest = await running.result()
    assert joiner.batch_size == 2
    assert joiner.token_ids == second_alone.token_ids
    assert rest.token_ids == solo[first].token_ids


def test_without_joining_a_request_waits_for_the_running_batch(
    tiny_models: dict[str, Path],
) -> None:
    from skillswitch.inference.policy import SchedulerSettings

    backend = LocalBackend.from_folders(
        {"m": tiny_models["qwen-a"]},
        device="cpu",
        settings=SchedulerSettings(join_running=False),
    )
    try:
        running = backend.submit("m", PROMPTS[2], GenerationParams(max_new_tokens=300))
        while backend.scheduler.stats.batches == 0:
            running._done.wait(0.01)
        later = backend.generate_sync("m", PROMPTS[1], GenerationParams(max_new_tokens=5))
        assert running.done
        assert later.batch_size == 1
    finally:
        backend.close()
