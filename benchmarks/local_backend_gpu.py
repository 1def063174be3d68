"""Many self-hosted experts on one GPU (H200): skillswitch's scheduler vs naive, and HBM use.

Random-weight Qwen2.5 models of real sizes, saved as model folders and loaded through the same
code path as users' folders:

- part ``1.5b``: 16 experts of Qwen2.5-1.5B shape, all resident (bf16, ~3.1 GB each);
- part ``7b``: 16 experts of Qwen2.5-7B shape (~15.2 GB each) under a ~100 GB device budget, so
  the scheduler must swap (evicted models go to a pinned host tier, then to disk).

Workload: 512 requests, each routed to 3 distinct experts drawn by Zipf popularity (s=1.1); each
generation has a ~256-token prompt and 256 new tokens (greedy). All requests arrive at once.

Naive (load the expert for each generation, generate alone, unload) would take hours, so it is
timed on a random sample of the same generations and extrapolated to the whole workload (stated
in the report). The HBM bound is measured in the same run (a device-to-device copy); the decode
step of one 1.5B expert at batch 64 is timed (``DecodeStats.decode_s / decode_steps``: the wall
time of the batch's decoding after its prefill, the wait for the GPU and the host's work between
steps included) and its bytes (weights + KV cache read) divided by the step time give the
achieved bandwidth, four times on the same prompts:
with transformers' DynamicCache and eager steps; with ``static_decode`` (a static cache, each
step replayed as a CUDA graph); with ``compile_decode`` (that step compiled by
``torch.compile`` first, then replayed as a CUDA graph, each step launched ahead of the host on
the device's tokens of the one before); and the same compiled in lockstep
(``decode_ahead: false``: each step waits for the host to read and handle the last one's
tokens), for the overlap's gain. Each is warmed up on the same batch
first (compile, graph warm-up, library initialisation), so the timed steps are steady state; the
warm-up's seconds are reported. ``--decode static|compiled`` also runs the scheduler part that
way (the compile done before the workload, its time added to skillswitch's total).

Disk: distinct random checkpoints are written once (``--distinct``, default 2) and each expert's
folder links to one of them; experts sharing a checkpoint are still loaded as separate models.

    python benchmarks/local_backend_gpu.py --part 1.5b --decode compiled \
        --json bench-results/gpu-1.5b.json
    python benchmarks/local_backend_gpu.py --part 7b --host-gb 40 --json bench-results/gpu-7b.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from skillswitch.inference import GenerationParams, LocalBackend, MemoryBudget, ModelRegistry
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.tiny import SHAPES, build_tokenizer, model_config

_CORPUS = (
    "the quick brown fox jumps over the lazy dog while seven wizards quietly judge a box of "
    "liquor jugs and the capital of France is Paris solve for x given three x plus five equals "
    "twenty then write a short poem about the sea the wind and the stars at night"
)
WORDS = _CORPUS.split(" ")


def hbm_copy_bandwidth(device: str, gib: float = 4.0, repeats: int = 20) -> float:
    """Bytes read + written per second by a device-to-device copy (the practical HBM bound)."""
    import torch

    n = int(gib * 2**30) // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n * 2 * repeats / elapsed


def build_checkpoints(root: Path, shape: str, distinct: int, device: str) -> list[Path]:
    """``distinct`` random checkpoints of ``shape`` (initialised on the GPU: seconds)."""
    import torch
    from transformers import Qwen2ForCausalLM

    size = SHAPES[shape]
    folders = []
    for index in range(distinct):
        folder = root / f"{shape}-weights-{index}"
        folders.append(folder)
        if (folder / "config.json").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer = build_tokenizer(folder)
        config = model_config("qwen2", size, tokenizer)
        torch.manual_seed(index)
        with torch.device(device):
            # Any: transformers' typing of PreTrainedModel.to rejects a dtype.
            model: Any = Qwen2ForCausalLM(config)
            model.to(torch.bfloat16)
        model.save_pretrained(str(folder))
        del model
        if device != "cpu":
            torch.cuda.empty_cache()
    return folders


def expert_folders(root: Path, checkpoints: list[Path], count: int, shape: str) -> dict[str, Path]:
    experts = {}
    for index in range(count):
        folder = root / f"{shape}-expert-{index:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        source = checkpoints[index % len(checkpoints)]
        for file in source.iterdir():
            link = folder / file.name
            if not link.exists():
                link.symlink_to(file.resolve())
        experts[f"expert-{index:02d}"] = folder
    return experts


def prompt_text(tokenizer: Any, tokens: int, salt: int) -> str:
    draw = random.Random(salt)
    words: list[str] = []
    while len(tokenizer(" ".join(words))["input_ids"]) < tokens:
        words.extend(draw.choice(WORDS) for _ in range(16))
    ids = tokenizer(" ".join(words))["input_ids"][:tokens]
    return str(tokenizer.decode(ids))


def workload(
    experts: list[str], requests: int, per_request: int, zipf_s: float, seed: int
) -> list[list[str]]:
    draw = random.Random(seed)
    weights = [1.0 / (rank + 1) ** zipf_s for rank in range(len(experts))]
    routes = []
    for _ in range(requests):
        chosen: list[str] = []
        while len(chosen) < per_request:
            pick = draw.choices(experts, weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        routes.append(chosen)
    return routes


def run_scheduler(
    backend: LocalBackend, jobs: list[tuple[str, str]], params: GenerationParams
) -> dict[str, Any]:
    loads0 = backend.residency.stats.loads
    load_s0 = backend.residency.stats.load_s
    started = time.perf_counter()
    handles = [backend.submit(expert, prompt, params, stream=False) for expert, prompt in jobs]
    results = []
    for index, handle in enumerate(handles, 1):
        results.append(handle.result_sync(3600))
        if index % (len(handles) // 8 or 1) == 0:
            log(f"{index}/{len(handles)} done, {backend.residency.stats.events[-3:]}")
    elapsed = time.perf_counter() - started
    stats = backend.residency.stats
    tokens = sum(r.completion_tokens for r in results)
    return {
        "seconds": elapsed,
        "generations": len(results),
        "tokens": tokens,
        "tokens_per_s": tokens / elapsed,
        "loads": stats.loads - loads0,
        "load_seconds": stats.load_s - load_s0,
        "promotions": stats.promotions,
        "promotion_seconds": stats.promotion_s,
        "evictions_to_host": stats.evictions_to_host,
        "evictions_to_disk": stats.evictions_to_disk,
        "batches": backend.scheduler.stats.batches,
        "largest_batch": backend.scheduler.stats.largest_batch,
        "mean_batch": len(results) / max(1, backend.scheduler.stats.batches),
    }


def run_naive_sample(
    backend: LocalBackend, jobs: list[tuple[str, str]], params: GenerationParams, samples: int
) -> dict[str, Any]:
    """Load, generate alone, unload: timed on ``samples`` random generations of the workload."""
    for resident in backend.resident():
        backend.unload_sync(resident.name)
    picked = random.Random(1).sample(jobs, samples)
    started = time.perf_counter()
    tokens = 0
    for expert, prompt in picked:
        tokens += backend.generate_sync(expert, prompt, params).completion_tokens
        backend.unload_sync(expert)
    elapsed = time.perf_counter() - started
    per_generation = elapsed / samples
    return {
        "sampled_generations": samples,
        "sample_seconds": elapsed,
        "seconds_per_generation": per_generation,
        "extrapolated_seconds": per_generation * len(jobs),
        "tokens_per_s": tokens / elapsed,
    }


def decode_bandwidth(
    backend: LocalBackend, expert: str, prompts: list[str], new_tokens: int, hbm: float
) -> tuple[dict[str, Any], list[tuple[int, ...]]]:
    """One batch of 64 to one resident expert; the decode steps' time against their bytes,
    and the generated token ids."""
    backend.load_sync(expert)
    scheduler = backend.scheduler
    warm_started = time.perf_counter()
    warm = GenerationParams(max_new_tokens=3)
    for handle in [backend.submit(expert, p, warm, stream=False) for p in prompts]:
        handle.result_sync(3600)
    warm_up_s = time.perf_counter() - warm_started
    before = scheduler.decode_stats.get(expert)
    steps0 = before.decode_steps if before else 0
    decode0 = before.decode_s if before else 0.0
    compiled0 = before.compiled_steps if before else 0
    graphed0 = before.graph_steps if before else 0
    params = GenerationParams(max_new_tokens=new_tokens)
    handles = [backend.submit(expert, p, params, stream=False) for p in prompts]
    results = [h.result_sync(3600) for h in handles]
    stats = scheduler.decode_stats[expert]
    steps = stats.decode_steps - steps0
    step_s = (stats.decode_s - decode0) / steps
    model = backend.residency.acquire(expert)
    backend.residency.release(expert)
    config = model.model.config
    weights = sum(
        p.numel() * p.element_size()
        for name, p in model.model.named_parameters()
        if "embed_tokens" not in name  # only the gathered rows of the embedding are read
    )
    if config.tie_word_embeddings:  # the LM head reads the (shared) embedding matrix in full
        weights += model.model.get_input_embeddings().weight.numel() * 2
    head_dim = config.hidden_size // config.num_attention_heads
    prompt_len = sum(r.prompt_tokens for r in results) / len(results)
    mean_context = prompt_len + new_tokens / 2
    kv_bytes = (
        len(prompts) * mean_context * config.num_hidden_layers * 2
        * config.num_key_value_heads * head_dim * 2
    )  # fmt: skip
    achieved = (weights + kv_bytes) / step_s
    return {
        "batch": len(prompts),
        "warm_up_seconds": warm_up_s,
        "steps": steps,
        "compiled_steps": stats.compiled_steps - compiled0,
        "graph_steps": stats.graph_steps - graphed0,
        "step_ms": step_s * 1000,
        "weight_bytes_per_step": weights,
        "kv_bytes_per_step": kv_bytes,
        "achieved_bytes_per_s": achieved,
        "hbm_copy_bytes_per_s": hbm,
        "fraction_of_hbm_bound": achieved / hbm,
        "tokens_per_s": len(prompts) / step_s,
    }, [r.token_ids for r in results]


DECODE_MODES = ("dynamic", "static", "compiled")
TIMED_MODES = (*DECODE_MODES, "compiled-lockstep")
"""The batch-64 step is timed each of these ways: ``compiled-lockstep`` is ``compiled`` with
``decode_ahead: false``, each step waiting for the host (on CUDA ``compiled`` runs ahead)."""


def decode_settings(settings: SchedulerSettings, mode: str) -> SchedulerSettings:
    """``settings`` decoding the ``mode`` way (one of TIMED_MODES)."""
    return replace(
        settings,
        static_decode=mode != "dynamic",
        compile_decode=mode.startswith("compiled"),
        decode_ahead=mode != "compiled-lockstep",
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["1.5b", "7b"], required=True)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--per-request", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--max-batch", type=int, default=128)
    parser.add_argument("--budget-gb", type=float, default=None, help="device weights budget")
    parser.add_argument("--host-gb", type=float, default=None, help="pinned host tier")
    parser.add_argument("--distinct", type=int, default=2)
    parser.add_argument("--naive-samples", type=int, default=6)
    parser.add_argument("--shape", default=None, help="override the model shape (tests: tiny)")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/skillswitch-gpu-models"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--decode",
        choices=DECODE_MODES,
        default="dynamic",
        help="how the scheduler part decodes: dynamic (DynamicCache, eager steps), static "
        "(static KV cache, CUDA-graph steps) or compiled (static, the step torch.compile'd); "
        "the batch-64 decode step is timed all these ways (and compiled in lockstep) whichever "
        "is chosen",
    )
    parser.add_argument("--static-decode", action="store_true", help="the same as --decode static")
    args = parser.parse_args()
    if args.static_decode and args.decode == "dynamic":
        args.decode = "static"

    import torch

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    shape = args.shape or args.part
    hbm = hbm_copy_bandwidth(device) if device != "cpu" else float("nan")
    t0 = time.perf_counter()
    log(f"HBM copy bandwidth {hbm / 1e12:.2f} TB/s; building {args.distinct} checkpoints")
    checkpoints = build_checkpoints(args.models_dir, shape, args.distinct, device)
    build_s = time.perf_counter() - t0
    log(f"checkpoints built in {build_s:.1f} s")
    folders = expert_folders(args.models_dir, checkpoints, args.experts, shape)
    registry = ModelRegistry()
    for name, folder in folders.items():
        registry.add(name, folder, dtype="bfloat16")
    budget = None
    if args.budget_gb is not None:
        budget = MemoryBudget.gib(args.budget_gb, args.host_gb or 0.0)
    elif args.part == "7b":
        budget = MemoryBudget.gib(100, 60 if args.host_gb is None else args.host_gb)
    settings = decode_settings(SchedulerSettings(max_batch_size=args.max_batch), args.decode)
    backend = LocalBackend(registry, device=device, budget=budget, settings=settings)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoints[0]))
    experts = list(folders)
    routes = workload(experts, args.requests, args.per_request, zipf_s=1.1, seed=0)
    prompts = [prompt_text(tokenizer, args.prompt_tokens, i) for i in range(args.requests)]
    jobs = [(expert, prompts[i]) for i, route in enumerate(routes) for expert in route]
    params = GenerationParams(max_new_tokens=args.new_tokens)
    popularity = {e: sum(1 for j in jobs if j[0] == e) for e in experts}

    preload: dict[str, Any] = {}
    if args.part == "1.5b":  # all resident: load every expert first, timed apart
        t0 = time.perf_counter()
        for name in experts:
            backend.load_sync(name)
        preload = {"loads": len(experts), "seconds": time.perf_counter() - t0}
        log(f"preloaded {len(experts)} experts in {preload['seconds']:.1f} s")
    compile_s = 0.0
    if args.decode == "compiled":  # before the workload, as a server would at start-up
        t0 = time.perf_counter()
        backend.preload([experts[0]])  # also loads it (the 7b part), as a server's start-up would
        compile_s = time.perf_counter() - t0
        log(f"decode step compiled in {compile_s:.1f} s")
    ours = run_scheduler(backend, jobs, params)
    log(f"scheduler: {ours}")
    bandwidth = None
    decode_modes: dict[str, Any] = {}
    if args.part == "1.5b":
        # The same batch of 64 decoded both ways, side by side: transformers' DynamicCache with
        # eager steps, and the static cache with CUDA-graph steps.
        outputs = {}
        for mode in TIMED_MODES:
            backend.scheduler.settings = decode_settings(settings, mode)
            decode_modes[mode], outputs[mode] = decode_bandwidth(
                backend, experts[0], prompts[:64], args.new_tokens, hbm
            )
            log(f"decode at batch 64, {mode}: {decode_modes[mode]}")
        backend.scheduler.settings = settings
        for mode in TIMED_MODES[1:]:
            same = sum(a == b for a, b in zip(outputs["dynamic"], outputs[mode], strict=True))
            decode_modes[f"{mode}_same_greedy_outputs"] = same / len(outputs[mode])
            decode_modes[f"{mode}_speedup"] = (
                decode_modes["dynamic"]["step_ms"] / decode_modes[mode]["step_ms"]
            )
        decode_modes["ahead_speedup"] = (
            decode_modes["compiled-lockstep"]["step_ms"] / decode_modes["compiled"]["step_ms"]
        )
        bandwidth = decode_modes[args.decode]
    naive = run_naive_sample(backend, jobs, params, args.naive_samples)
    log(f"naive sample: {naive}")
    scheduler_total = ours["seconds"] + preload.get("seconds", 0.0) + compile_s
    report = {
        "benchmark": "local_backend_gpu",
        "part": args.part,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if device != "cpu" else "none",
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "cpus": os.cpu_count(),
        },
        "shape": shape,
        "experts": args.experts,
        "distinct_checkpoints": args.distinct,
        "checkpoint_build_seconds": build_s,
        "budget_bytes": {"device": backend.budget.device_bytes, "host": backend.budget.host_bytes},
        "requests": args.requests,
        "experts_per_request": args.per_request,
        "generations": len(jobs),
        "expert_popularity": popularity,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "max_batch": args.max_batch,
        "hbm_copy_bytes_per_s": hbm,
        "preload": preload,
        "skillswitch": ours,
        "skillswitch_total_seconds": scheduler_total,
        "naive": naive,
        "speedup_vs_naive": naive["extrapolated_seconds"] / scheduler_total,
        "decode": args.decode,
        "compile_seconds": compile_s,
        "decode_batch64": bandwidth,
        "decode_batch64_modes": decode_modes,
    }
    backend.close()
    print(f"part {args.part}: {args.experts} experts, {len(jobs)} generations x {args.new_tokens}")
    print(f"{'mode':<44} {'seconds':>10} {'loads':>6} {'tok/s':>10}")
    print(
        f"{'skillswitch scheduler':<44} {scheduler_total:>10.1f} "
        f"{ours['loads'] + preload.get('loads', 0):>6} {ours['tokens'] / scheduler_total:>10.0f}"
    )
    print(
        f"{'naive (extrapolated from ' + str(args.naive_samples) + ' samples)':<44} "
        f"{naive['extrapolated_seconds']:>10.1f} {len(jobs):>6} {naive['tokens_per_s']:>10.0f}"
    )
    print(f"speedup vs naive: {report['speedup_vs_naive']:.1f}x")
    for mode in TIMED_MODES:
        if mode in decode_modes:
            b = decode_modes[mode]
            print(
                f"decode at batch {b['batch']}, {mode:<17}: {b['step_ms']:.2f} ms/step, "
                f"{b['achieved_bytes_per_s'] / 1e12:.2f} TB/s of "
                f"{hbm / 1e12:.2f} TB/s copy bound = {b['fraction_of_hbm_bound']:.1%} "
                f"(warm-up {b['warm_up_seconds']:.1f} s; of {b['steps']} steps "
                f"{b['compiled_steps']} compiled, {b['graph_steps']} CUDA-graph replays)"
            )
    for mode in TIMED_MODES[1:]:
        if mode in decode_modes:
            print(
                f"{mode} decode: {decode_modes[f'{mode}_speedup']:.2f}x the dynamic step; "
                f"{decode_modes[f'{mode}_same_greedy_outputs']:.0%} of greedy outputs identical"
            )
    if "ahead_speedup" in decode_modes:
        print(
            f"compiled decode ahead of the host: {decode_modes['ahead_speedup']:.2f}x "
            "the compiled step in lockstep"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        # Strict JSON: what was not measured (the HBM bound on a CPU) is null, not NaN.
        text = json.dumps(_finite(report), indent=2, allow_nan=False)
        args.json.write_text(text + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


if __name__ == "__main__":
    main()
