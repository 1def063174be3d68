"""Dispatcher overhead with 3 instant experts, side by side with a bare ``asyncio.gather``.

The experts answer at once (TestExpert, no network), so what is measured is the dispatcher's own
work per request: task group, per-attempt timeout, retry loop (backoff, Retry-After), circuit
breakers, attempt records. The baseline is the least any fan-out can do: ``asyncio.gather`` of
the three ``answer`` calls. Both run in the same process, interleaved in rounds.

    python benchmarks/dispatch_overhead.py --json bench-results/dispatch_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Any

from skillswitch.agents import Dispatcher, TestExpert, parse_messages
from skillswitch.evals.metrics import percentiles

NAMES = ("a", "b", "c")


async def measure(requests: int, rounds: int) -> dict[str, Any]:
    experts = {name: TestExpert(name, reply="42") for name in NAMES}
    dispatcher = Dispatcher(experts)
    messages = parse_messages("what is 6 times 7")

    async def bare() -> None:
        await asyncio.gather(*(experts[n].answer(messages) for n in NAMES))

    async def dispatched() -> None:
        result = await dispatcher.dispatch(NAMES, messages, deadline_s=30)
        assert len(result.replies) == 3

    timings: dict[str, list[float]] = {"asyncio.gather": [], "skillswitch Dispatcher": []}
    for _ in range(200):  # warm-up
        await bare()
        await dispatched()
    for _ in range(rounds):
        for name, call in (("asyncio.gather", bare), ("skillswitch Dispatcher", dispatched)):
            for _ in range(requests // rounds):
                started = time.perf_counter()
                await call()
                timings[name].append((time.perf_counter() - started) * 1000)
        for expert in experts.values():
            expert.calls.clear()
    stats = {name: percentiles(values) for name, values in timings.items()}
    base, ours = stats["asyncio.gather"], stats["skillswitch Dispatcher"]
    return {
        "benchmark": "dispatch_overhead",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "experts": len(NAMES),
        "requests_per_policy": len(timings["asyncio.gather"]),
        "latency_ms": stats,
        "added_ms_p50": ours["p50"] - base["p50"],
        "added_ms_p99": ours["p99"] - base["p99"],
        "ratio_p50": ours["p50"] / base["p50"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(measure(args.requests, args.rounds))
    print(f"{'policy':24} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, stats in result["latency_ms"].items():
        print(f"{name:24} {stats['p50']:8.3f} {stats['p90']:8.3f} {stats['p99']:8.3f}")
    print(
        f"dispatcher adds {result['added_ms_p50']:.3f} ms at p50 and "
        f"{result['added_ms_p99']:.3f} ms at p99 per request with "
        f"{result['experts']} instant experts "
        f"({result['ratio_p50']:.1f}x the bare gather)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
