"""The long fault-injection run (``make soak``): N requests through ``skillswitch serve`` to
experts on an upstream that fails at a given rate (tests/reliability/harness.py), then the
counts: sent, answered, clear errors, lost (must be 0), faults injected by kind, retries and
fallback calls, over-budget requests (must be 0), latency p50/p99 and wall time.

    python -m tests.reliability.soak --requests 10000 --fault-rate 0.2 \\
        --json bench-results/soak.json

Exits 1 when a request was lost or went past its retry budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import sys
from pathlib import Path

import anyio

from tests.reliability.harness import Load, Settings, budget_violations, run_load, running_rig

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.2, help="per upstream call")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if not 0 <= args.fault_rate <= 1:
        parser.error(f"--fault-rate is {args.fault_rate}; give a share between 0 and 1")
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be 1 or more")
    # Failures are the point here: the server's per-failure warnings would be 1000s of lines.
    logging.basicConfig(level=logging.ERROR)
    for name in ("skillswitch", "httpx", "httpx2", "mcp", "uvicorn"):
        logging.getLogger(name).setLevel(logging.ERROR)

    settings = Settings()
    load = Load(
        args.requests,
        concurrency=args.concurrency,
        stream_share=args.stream_share,
        seed=args.seed,
    )
    cache = REPO / ".cache" / "test"
    cache.mkdir(parents=True, exist_ok=True)
    print(
        f"soak: {args.requests} requests, {args.concurrency} at once, "
        f"{args.stream_share:.0%} streamed, fault rate {args.fault_rate:.0%}, seed {args.seed}",
        flush=True,
    )
    with running_rig(rate=args.fault_rate, seed=args.seed, cache_dir=cache) as rig:
        outcomes, report = anyio.run(run_load, rig, load)
        over = budget_violations(rig.upstream, outcomes, settings)
    print(report.table())
    for example in report.lost_examples:
        print(f"lost: {example}")
    for example in over[:10]:
        print(f"over budget: {example}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": datetime.date.today().isoformat(),
            "command": "python -m tests.reliability.soak " + " ".join(sys.argv[1:]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "settings": dataclasses.asdict(settings),
            "load": {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "stream_share": args.stream_share,
                "seed": args.seed,
            },
            "report": report.to_dict(),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if report.lost or over else 0


if __name__ == "__main__":
    sys.exit(main())
