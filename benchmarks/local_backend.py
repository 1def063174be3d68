"""Many small experts on one CPU: naive vs all-resident unbatched vs skillswitch's scheduler.

8 random-weight experts (Llama- and Qwen2-style, ``small`` shape: 4 layers, hidden 256) saved as
model folders; 64 requests, each routed to 2 experts (a fixed random draw), so 128 generations of
up to 32 greedy tokens. Three ways to serve them, in one run, on the same folders and through the
same loader and decode loop:

- naive: load the expert for each request, generate alone, unload (what a per-request process
  or a one-model server swapping on demand does);
- all-resident unbatched: every expert loaded once, requests served one at a time;
- skillswitch: every request submitted at once to the scheduler (batches per expert, resident
  experts first); and again under a budget that holds only half the experts (swaps forced);
- transformers' own continuous batching (``generate_batch``), every expert resident, each
  expert's requests in one call (the peer for batching per expert).

The greedy token ids of every generation must be identical across the modes (asserted). Three
more runs of the scheduler: with the static-cache decode; with that decode step compiled by
``torch.compile`` (``compile_decode``; the compile is done before the clock starts, on a batch
of each architecture, and its time reported apart); and with every answer held to a JSON Schema
by constrained decoding (its answers differ by design: each must validate; what it costs is its
tokens/s against the unconstrained scheduler's).

    python benchmarks/local_backend.py --json bench-results/local_backend.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import jsonschema

from skillswitch.inference import (
    GenerationParams,
    LocalBackend,
    MemoryBudget,
    ModelRegistry,
    json_grammar,
)
from skillswitch.inference.policy import SchedulerSettings
from skillswitch.inference.tiny import build_model

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What is the capital of France?",
    "Solve for x: 3x + 5 = 20",
    "Write a short poem about the sea and the stars.",
    "def add(a, b): return a + b  # explain this code",
    "Translate to German: good morning, how are you?",
    "Why is the mitochondria called the powerhouse of the cell?",
    "Give me three facts about the number 42.",
    "Summarise: the quick brown fox jumps over the lazy dog.",
]
# Bounded fields, so that a random-weight model's answer can close within the token budget.
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 8}, "confident": {"type": "boolean"}},
    "required": ["answer", "confident"],
    "additionalProperties": False,
}


def build_experts(root: Path, count: int) -> dict[str, Path]:
    folders = {}
    for index in range(count):
        arch = "llama" if index % 2 == 0 else "qwen2"
        folder = root / f"expert-{index}"
        if not (folder / "model.safetensors").exists():
            build_model(folder, arch=arch, shape="small", seed=100 + index)  # type: ignore[arg-type]
        folders[f"expert-{index}"] = folder
    return folders


def workload(
    experts: list[str], requests: int, per_request: int, seed: int
) -> list[tuple[str, list[dict[str, str]]]]:
    draw = random.Random(seed)
    jobs = []
    for index in range(requests):
        question = f"{QUESTIONS[index % len(QUESTIONS)]} (request {index})"
        messages = [{"role": "user", "content": question}]
        for expert in draw.sample(experts, per_request):
            jobs.append((expert, messages))
    return jobs


def registry_of(folders: dict[str, Path]) -> ModelRegistry:
    registry = ModelRegistry()
    for name, folder in folders.items():
        registry.add(name, folder)
    return registry


def run_naive(
    folders: dict[str, Path], jobs: list[Any], params: GenerationParams
) -> dict[str, Any]:
    backend = LocalBackend(
        registry_of(folders), device="cpu", settings=SchedulerSettings(max_batch_size=1)
    )
    started = time.perf_counter()
    outputs = []
    for expert, messages in jobs:
        outputs.append(backend.generate_sync(expert, messages, params).token_ids)
        backend.unload_sync(expert)
    elapsed = time.perf_counter() - started
    return finish(backend, "naive (load per request, one at a time)", elapsed, outputs)


def run_unbatched(
    folders: dict[str, Path], jobs: list[Any], params: GenerationParams
) -> dict[str, Any]:
    backend = LocalBackend(
        registry_of(folders), device="cpu", settings=SchedulerSettings(max_batch_size=1)
    )
    for name in folders:
        backend.load_sync(name)
    loads_before = backend.residency.stats.loads
    started = time.perf_counter()
    outputs = [
        backend.generate_sync(expert, messages, params).token_ids for expert, messages in jobs
    ]
    elapsed = time.perf_counter() - started
    result = finish(backend, "all-resident unbatched", elapsed, outputs)
    result["loads"] -= loads_before  # loaded before the clock started
    return result


def run_scheduler(
    folders: dict[str, Path],
    jobs: list[Any],
    params: GenerationParams,
    *,
    budget_models: int | None,
    static_decode: bool = False,
    compile_decode: bool = False,
) -> dict[str, Any]:
    registry = registry_of(folders)
    budget = None
    label = "skillswitch scheduler"
    if static_decode:
        label += ", static decode" + (" compiled" if compile_decode else "")
    if budget_models is not None:
        probe = LocalBackend(registry, device="cpu", budget=MemoryBudget(1 << 40))
        size = max(probe.residency.expected_bytes(n) for n in folders)
        probe.close()
        budget = MemoryBudget(int(size * (budget_models + 0.5)))
        label = f"skillswitch scheduler, budget for {budget_models} of {len(folders)} experts"
    settings = SchedulerSettings(static_decode=static_decode, compile_decode=compile_decode)
    backend = LocalBackend(registry, device="cpu", budget=budget, settings=settings)
    started = time.perf_counter()
    handles = [backend.submit(expert, messages, params) for expert, messages in jobs]
    results = [h.result_sync(600) for h in handles]
    elapsed = time.perf_counter() - started
    if params.grammar is not None:
        label = "skillswitch scheduler, every answer held to a JSON Schema"
        closed = [r.text for r in results if r.finish_reason == "stop"]
        for text in closed:
            jsonschema.validate(json.loads(text), ANSWER_SCHEMA)
        print(f"constrained: {len(closed)} of {len(results)} answers closed, every one valid")
    return finish(backend, label, elapsed, [r.token_ids for r in results])


def compile_steps(folders: dict[str, Path]) -> float:
    """Compile the decode step of each architecture in the run before any mode is timed, as
    ``LocalBackend.preload`` does at start-up; seconds."""
    first_of_arch: dict[str, str] = {}
    for name, folder in folders.items():
        arch = json.loads((folder / "config.json").read_text())["model_type"]
        first_of_arch.setdefault(arch, name)
    settings = SchedulerSettings(static_decode=True, compile_decode=True)
    backend = LocalBackend(registry_of(folders), device="cpu", settings=settings)
    started = time.perf_counter()
    backend.preload(list(first_of_arch.values()))
    elapsed = time.perf_counter() - started
    for name in first_of_arch.values():
        steps = backend.scheduler.decode_stats[name]
        assert steps.compiled_steps == steps.decode_steps > 0, f"{name} did not decode compiled"
    backend.close()
    return elapsed


def run_transformers_cb(
    folders: dict[str, Path], jobs: list[Any], params: GenerationParams
) -> dict[str, Any]:
    """transformers' own continuous batching (``generate_batch``, paged attention), every expert
    resident, each expert's requests in one call: the peer for "batches per expert"."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    # transformers' auto classes and GenerationConfig are untyped: held as Any here.
    models: dict[str, Any] = {}
    tokenizers: dict[str, Any] = {}
    for name, folder in folders.items():
        tokenizers[name] = AutoTokenizer.from_pretrained(str(folder))
        models[name] = AutoModelForCausalLM.from_pretrained(str(folder))
        models[name].eval()
    first = next(iter(folders))
    warm_ids = [tokenizers[first].apply_chat_template(jobs[0][1], add_generation_prompt=True)]
    make_config: Any = GenerationConfig
    config = make_config(
        max_new_tokens=params.max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizers[first].eos_token_id,
        pad_token_id=tokenizers[first].pad_token_id,
    )
    models[first].generate_batch(inputs=[list(warm_ids[0]["input_ids"])], generation_config=config)
    started = time.perf_counter()
    outputs: list[tuple[int, ...] | None] = [None] * len(jobs)
    for name in folders:
        mine = [i for i, (expert, _) in enumerate(jobs) if expert == name]
        prompts = []
        for i in mine:
            rendered = tokenizers[name].apply_chat_template(
                jobs[i][1], add_generation_prompt=True, tokenize=False
            )
            prompts.append(tokenizers[name](rendered, add_special_tokens=False)["input_ids"])
        result = models[name].generate_batch(inputs=prompts, generation_config=config)
        eos = tokenizers[name].eos_token_id
        for index, job in enumerate(mine):
            tokens = list(result[f"req_{index}"].generated_tokens)
            outputs[job] = tuple(tokens[: tokens.index(eos)] if eos in tokens else tokens)
    elapsed = time.perf_counter() - started
    done = [o for o in outputs if o is not None]
    return {
        "mode": "transformers continuous batching (generate_batch), all resident",
        "seconds": elapsed,
        "loads": 0,
        "load_seconds": 0.0,
        "batches": len(folders),
        "largest_batch": max(sum(1 for e, _ in jobs if e == n) for n in folders),
        "tokens": sum(len(o) for o in done),
        "tokens_per_s": sum(len(o) for o in done) / elapsed,
        "outputs": outputs,
    }


def finish(
    backend: LocalBackend, label: str, elapsed: float, outputs: list[tuple[int, ...]]
) -> dict[str, Any]:
    stats = backend.residency.stats
    result = {
        "mode": label,
        "seconds": elapsed,
        "loads": stats.loads,
        "load_seconds": stats.load_s,
        "batches": backend.scheduler.stats.batches,
        "largest_batch": backend.scheduler.stats.largest_batch,
        "tokens": sum(len(o) for o in outputs),
        "tokens_per_s": sum(len(o) for o in outputs) / elapsed,
        "outputs": outputs,
    }
    backend.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--per-request", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--models-dir", type=Path, default=REPO / ".cache" / "bench" / "local-experts"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    folders = build_experts(args.models_dir, args.experts)
    jobs = workload(list(folders), args.requests, args.per_request, seed=0)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    # Warm the imports and kernels once so that no mode pays for them.
    warm = LocalBackend(registry_of({"w": next(iter(folders.values()))}), device="cpu")
    warm.generate_sync("w", jobs[0][1], params)
    warm.close()
    compile_s = compile_steps(folders)

    modes = [
        run_naive(folders, jobs, params),
        run_unbatched(folders, jobs, params),
        run_scheduler(folders, jobs, params, budget_models=None),
        run_scheduler(folders, jobs, params, budget_models=args.experts // 2),
        run_transformers_cb(folders, jobs, params),
        run_scheduler(folders, jobs, params, budget_models=None, static_decode=True),
        run_scheduler(
            folders, jobs, params, budget_models=None, static_decode=True, compile_decode=True
        ),
    ]
    # Twice the budget: a random model spells the string a byte or two per token.
    budget = 2 * args.max_new_tokens
    held = GenerationParams(max_new_tokens=budget, grammar=json_grammar(ANSWER_SCHEMA))
    constrained = run_scheduler(folders, jobs, held, budget_models=None)
    reference = modes[0]["outputs"]
    for mode in modes[1:]:
        assert mode["outputs"] == reference, f"{mode['mode']} produced different greedy outputs"
    naive, unbatched, ours = modes[0]["seconds"], modes[1]["seconds"], modes[2]["seconds"]
    report = {
        "benchmark": "local_backend",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "experts": args.experts,
        "requests": args.requests,
        "experts_per_request": args.per_request,
        "generations": len(jobs),
        "max_new_tokens": args.max_new_tokens,
        "identical_greedy_outputs": True,
        "modes": [{k: v for k, v in m.items() if k != "outputs"} for m in [*modes, constrained]],
        "speedup_vs_naive": naive / ours,
        "speedup_vs_unbatched": unbatched / ours,
        "speedup_vs_naive_half_budget": naive / modes[3]["seconds"],
        "speedup_vs_transformers_cb": modes[4]["seconds"] / ours,
        "static_decode_speedup": ours / modes[5]["seconds"],
        "compiled_decode_speedup": ours / modes[6]["seconds"],
        "compiled_vs_static_decode": modes[5]["seconds"] / modes[6]["seconds"],
        "compile_seconds_before_timing": compile_s,
        "constrained_tokens_per_s_ratio": constrained["tokens_per_s"] / modes[2]["tokens_per_s"],
    }
    print(f"{'mode':<66} {'seconds':>8} {'loads':>6} {'batches':>8} {'tok/s':>8}")
    for mode in report["modes"]:
        print(
            f"{mode['mode']:<66} {mode['seconds']:>8.2f} {mode['loads']:>6} "
            f"{mode['batches']:>8} {mode['tokens_per_s']:>8.1f}"
        )
    print(
        f"skillswitch vs naive: {report['speedup_vs_naive']:.1f}x, vs all-resident unbatched: "
        f"{report['speedup_vs_unbatched']:.1f}x, vs transformers continuous batching: "
        f"{report['speedup_vs_transformers_cb']:.1f}x "
        f"(identical greedy outputs: {len(jobs)} generations); static decode "
        f"{report['static_decode_speedup']:.2f}x the default scheduler, compiled "
        f"{report['compiled_decode_speedup']:.2f}x (its compile: {compile_s:.1f} s, before "
        f"timing); constrained decoding "
        f"{report['constrained_tokens_per_s_ratio']:.2f}x its tokens/s"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
