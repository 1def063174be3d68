"""benchmarks/local_backend_gpu.py runs end to end at tiny shapes on the CPU, so that the first
run on a lent H200 does not spend device time on a broken script: both parts, the scheduler,
the decode step timed four ways (dynamic cache, static decode, static decode compiled, and
compiled in lockstep with the host; same greedy outputs), the scheduler part compiled, the budget that forces swaps, the naive sample, the table and strict JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.scripts import run_script

SMALL = [
    "--shape", "tiny", "--experts", "4", "--requests", "8", "--per-request", "2",
    "--prompt-tokens", "16", "--new-tokens", "4", "--naive-samples", "2",
]  # fmt: skip


def run(tmp_path: Path, cli_env: dict[str, str], *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    command = [*SMALL, *args, "--models-dir", str(tmp_path), "--json", str(out)]
    finished = run_script("benchmarks/local_backend_gpu.py", command, cli_env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "skillswitch scheduler" in finished.stdout
    report: dict[str, Any] = json.loads(out.read_text(), parse_constant=_no_constant)
    assert report["generations"] == 16
    assert report["skillswitch"]["generations"] == 16
    assert report["skillswitch"]["tokens"] == 16 * 4
    assert report["naive"]["sampled_generations"] == 2
    assert report["hbm_copy_bytes_per_s"] is None  # not measured on a CPU: null, not NaN
    return report


def test_the_resident_part_times_decode_four_ways(tmp_path: Path, cli_env: dict[str, str]) -> None:
    report = run(tmp_path, cli_env, "--part", "1.5b", "--decode", "compiled")
    assert report["preload"]["loads"] == 4
    assert report["skillswitch"]["loads"] == 0  # all resident before the workload
    assert report["compile_seconds"] > 0
    modes = report["decode_batch64_modes"]
    assert modes["static_same_greedy_outputs"] == 1.0
    assert modes["compiled_same_greedy_outputs"] == 1.0
    assert modes["compiled-lockstep_same_greedy_outputs"] == 1.0
    assert modes["compiled-lockstep"]["compiled_steps"] == modes["compiled-lockstep"]["steps"] > 0
    assert modes["ahead_speedup"] > 0
    for mode in ("dynamic", "static", "compiled", "compiled-lockstep"):
        assert modes[mode]["step_ms"] > 0
    assert modes["dynamic"]["compiled_steps"] == modes["static"]["compiled_steps"] == 0
    assert modes["compiled"]["compiled_steps"] == modes["compiled"]["steps"] > 0
    # No CUDA graph on a CPU: every mode's steps ran uncaptured.
    assert all(modes[mode]["graph_steps"] == 0 for mode in ("dynamic", "static", "compiled"))
    assert report["decode_batch64"] == modes["compiled"]


def test_the_swapping_part_evicts_under_its_budget(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # ~0.2 MB per tiny expert: a 0.5 MB device budget holds two of the four
    report = run(tmp_path, cli_env, "--part", "7b", "--budget-gb", "0.0005")
    scheduler = report["skillswitch"]
    assert scheduler["loads"] >= 4
    assert scheduler["evictions_to_host"] + scheduler["evictions_to_disk"] >= 1


def _no_constant(name: str) -> Any:
    raise AssertionError(f"the report holds {name}: not strict JSON")
