"""The decode step's attention: transformers' SDPA attention vs skillswitch's packed heads.

One random-weight grouped-query model (Qwen2-style; ``--shape small`` on a CPU: 8 query heads
sharing 2 key/value heads; ``--shape 1.5b`` on a GPU) decodes a static batch (``static_decode``:
64 rows, 256-token prompts, room for 256 new tokens, so 512 cache positions), four ways on the
same prompts: with transformers' ``sdpa`` attention and with ``skillswitch_sdpa``
(:mod:`skillswitch.inference.attention`), each eagerly and compiled (``compile_decode``; on CUDA
both are then replayed as CUDA graphs, as the scheduler does). Given a mask, transformers' SDPA
copies each key/value head once per query head before attending when it is compiled (and on
transformers < 5.24 always); the packed way reads each key/value head once.

Each way is warmed up first (compile, graph capture); then ``--steps`` decode steps are timed,
each until its tokens are on the host, and the median reported. The greedy tokens of every way
are compared with the first's (asserted in float32; reported in bf16, where kernels that sum in
another order may flip a near-tie of a random model).

    python benchmarks/decode_attention.py --json bench-results/decode_attention.json
    python benchmarks/decode_attention.py --shape 1.5b --json bench-results/decode-gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from skillswitch.inference.attention import ATTENTION_NAME, attention_kernels
from skillswitch.inference.folders import inspect_folder
from skillswitch.inference.loading import LoadedModel, load_model, resolve_device, resolve_dtype
from skillswitch.inference.static_decode import StaticBatch
from skillswitch.inference.tiny import build_model

WAYS = (("sdpa", False), (ATTENTION_NAME, False), ("sdpa", True), (ATTENTION_NAME, True))


def prompts(rows: int, tokens: int, vocab: int) -> list[list[int]]:
    """``rows`` prompts of up to ``tokens`` ids (lengths differ by a few, so rows are padded)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return [
        torch.randint(5, vocab, (tokens - i % 8,), generator=generator).tolist()
        for i in range(rows)
    ]


def decode(
    loaded: LoadedModel, batch_prompts: list[list[int]], new_tokens: int, steps: int, compiled: bool
) -> dict[str, Any]:
    """Prefill, warm-up steps, then ``steps`` timed steps: their median and the tokens."""
    import torch

    with torch.inference_mode(), attention_kernels(loaded.model.device):  # as the scheduler
        started = time.perf_counter()
        batch = StaticBatch(loaded, batch_prompts, new_tokens, compiled=compiled)
        tokens = batch.prefill().argmax(-1).tolist()
        generated = [tokens]
        for _ in range(2):  # the first compiles (and on CUDA runs uncaptured), the second replays
            tokens = batch.step(tokens).argmax(-1).tolist()
            generated.append(tokens)
        warm_up_s = time.perf_counter() - started
        times = []
        for _ in range(steps):
            step_started = time.perf_counter()
            tokens = batch.step(tokens).argmax(-1).tolist()
            times.append(time.perf_counter() - step_started)
            generated.append(tokens)
        was_compiled, replayed = batch.compiled, batch.replayed
        batch.close()
    return {
        "step_ms": statistics.median(times) * 1000,
        "warm_up_seconds": warm_up_s,
        "compiled": was_compiled,
        "cuda_graph": replayed,
        "tokens": generated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="small", help="a shape of skillswitch.inference.tiny")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16, help="timed decode steps per way")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.steps + 3 > args.new_tokens:
        parser.error(f"--steps {args.steps} needs --new-tokens of at least {args.steps + 3}")

    import torch
    import transformers

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    with tempfile.TemporaryDirectory() as root:
        folder = build_model(Path(root) / "model", arch="qwen2", shape=args.shape, dtype=dtype)
        info = inspect_folder(folder)
        ways: list[dict[str, Any]] = []
        for attention, compiled in WAYS:
            loaded = load_model("model", info, device, dtype)
            loaded.model.set_attn_implementation(attention)
            batch_prompts = prompts(args.rows, args.prompt_tokens, loaded.model.config.vocab_size)
            result = decode(loaded, batch_prompts, args.new_tokens, args.steps, compiled)
            ways.append({"attention": attention, "compiled_requested": compiled, **result})
            del loaded
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    reference = ways[0]["tokens"]
    for way in ways:
        same = [a == b for ref, got in zip(reference, way.pop("tokens"), strict=True)
                for a, b in zip(ref, got, strict=True)]  # fmt: skip
        way["same_greedy_tokens"] = sum(same) / len(same)
        if dtype == "float32":
            assert way["same_greedy_tokens"] == 1.0, f"{way['attention']} changed the tokens"
    for compiled in (False, True):
        peer, ours = (w for w in ways if w["compiled_requested"] == compiled)
        ours["speedup_vs_transformers_sdpa"] = peer["step_ms"] / ours["step_ms"]
    report = {
        "shape": args.shape,
        "rows": args.rows,
        "cache_positions": args.prompt_tokens + args.new_tokens,
        "timed_steps": args.steps,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "dtype": dtype,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "ways": ways,
    }
    print(
        f"decode step, {args.shape} shape, batch {args.rows}, "
        f"{args.prompt_tokens + args.new_tokens} cache positions, {report['device']} {dtype}"
    )
    print(f"{'attention':<18} {'compiled':>8} {'ms/step':>9} {'vs sdpa':>8} {'same tokens':>12}")
    for way in ways:
        ratio = way.get("speedup_vs_transformers_sdpa")
        print(
            f"{way['attention']:<18} {way['compiled']!s:>8} {way['step_ms']:>9.2f} "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>8} {way['same_greedy_tokens']:>12.1%}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
