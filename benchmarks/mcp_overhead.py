"""Added latency of a tool call proxied through skillswitch's MCP server, side by side with the
same call made directly to the upstream server, in one run.

The upstream is a real third-party MCP server over stdio (``mcp-server-time``, or the npm
``server-everything``'s ``echo``; install both with ``make mcp-peers``). Three paths, the same
client (the official ``mcp`` SDK) and the same call, interleaved in rounds:

- direct: client -> upstream (stdio)
- hub: skillswitch's ``ToolHub`` -> upstream (what a model expert's tool call costs)
- proxy: client -> ``skillswitch mcp`` (stdio) -> upstream (stdio)

    python benchmarks/mcp_overhead.py --json bench-results/mcp_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from skillswitch.evals.metrics import percentiles
from skillswitch.tools.connection import ServerSettings
from skillswitch.tools.hub import HubServer, ToolHub

REPO = Path(__file__).resolve().parents[1]
UPSTREAMS = {
    "time": (
        REPO / ".venv-mcp-peers" / "bin" / "mcp-server-time",
        ["--local-timezone", "UTC"],
        "get_current_time",
        {"timezone": "Asia/Tokyo"},
    ),
    "everything": (
        REPO / "tests" / "peers" / "node_modules" / ".bin" / "mcp-server-everything",
        ["stdio"],
        "echo",
        {"message": "hello"},
    ),
}


async def measure(upstream: str, calls: int, rounds: int) -> dict[str, Any]:
    program, args, tool, arguments = UPSTREAMS[upstream]
    if not program.exists():
        raise SystemExit(f"{program} is missing; run `make mcp-peers`")
    params = StdioServerParameters(command=str(program), args=args)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        default = resources.files("skillswitch.config").joinpath("default.yaml").read_text()
        default = default.split("# --- experts and tools of the default config")[0]  # skills
        server = json.dumps([str(program), *args])
        config.write_text(f"{default}\ntools:\n  servers:\n    - {{name: up, command: {server}}}\n")
        env = {**os.environ, "SKILLSWITCH_CONFIG": str(config)}
        proxy = StdioServerParameters(
            command=sys.executable, args=["-m", "skillswitch", "mcp"], env=env
        )
        hub = ToolHub([HubServer(ServerSettings("up", params))])
        try:
            async with Client(params) as direct, Client(proxy) as proxied:
                paths: dict[str, Callable[[], Awaitable[Any]]] = {
                    "direct": lambda: direct.call_tool(tool, arguments),
                    "skillswitch hub": lambda: hub.call(f"up__{tool}", arguments),
                    "skillswitch MCP proxy": lambda: proxied.call_tool(f"up__{tool}", arguments),
                }
                for call in paths.values():  # start, list, warm up
                    for _ in range(20):
                        result = await call()
                        assert not result.is_error, result
                timings: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(rounds):
                    for name, call in paths.items():
                        for _ in range(calls // rounds):
                            started = time.perf_counter()
                            await call()
                            timings[name].append((time.perf_counter() - started) * 1000)
        finally:
            hub.close()
    stats = {name: percentiles(values) for name, values in timings.items()}
    base = stats["direct"]
    return {
        "upstream": upstream,
        "tool": tool,
        "calls_per_path": len(timings["direct"]),
        "latency_ms": stats,
        "added_ms": {
            name: {"p50": s["p50"] - base["p50"], "p99": s["p99"] - base["p99"]}
            for name, s in stats.items()
            if name != "direct"
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="per path")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--upstream", choices=sorted(UPSTREAMS), action="append")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    upstreams = args.upstream or sorted(UPSTREAMS)
    results = [anyio.run(measure, name, args.calls, args.rounds) for name in upstreams]
    report = {
        "benchmark": "mcp_overhead",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "results": results,
    }
    print(f"{'upstream tool':<28}{'path':<24}{'p50 ms':>9}{'p99 ms':>9}{'+p50':>9}{'+p99':>9}")
    for result in results:
        for name, stats in result["latency_ms"].items():
            added = result["added_ms"].get(name, {"p50": 0.0, "p99": 0.0})
            print(
                f"{result['upstream'] + ' ' + result['tool']:<28}{name:<24}"
                f"{stats['p50']:>9.3f}{stats['p99']:>9.3f}"
                f"{added['p50']:>+9.3f}{added['p99']:>+9.3f}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
