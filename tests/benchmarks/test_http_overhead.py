"""benchmarks/http_overhead.py runs end to end on a small scale: its upstream, skillswitch serve
with routing bypassed, its load generator, the hold test, the table and the JSON (LiteLLM is not
needed: its rows are left out when it is not among the targets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "http_overhead.py"


def test_smoke_run_direct_and_bypass(tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "http_overhead.json"
    command = [
        sys.executable, str(SCRIPT), "--targets", "direct,bypass", "--json", str(out),
        "--requests", "20", "--warmup", "5", "--rounds", "1", "--clients", "4",
        "--duration", "0.5", "--warmup-s", "0.2",
        "--hold-clients", "20", "--hold-duration", "1", "--hold-stream-s", "0.5",
    ]  # fmt: skip
    finished = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "skillswitch (bypass)" in finished.stdout
    report = json.loads(out.read_text())
    for mode in ("plain", "stream"):
        for target in ("direct", "bypass"):
            assert report["latency"][mode][target]["n"] == 20
            assert report["latency"][mode][target]["errors"] == 0
            load = report["throughput"][mode][target]["4"]
            assert load["errors"] == 0
            assert load["requests_per_s"] > 0
            assert load["server_cpu_ms_per_request"] > 0
        assert report["latency"][mode]["bypass"]["added_ms"]["p50"] > 0
    hold = report["hold"]["bypass"]
    assert hold["errors"] == 0
    assert hold["max_open_streams"] == 20
    assert hold["rss_mb"]["peak"] > 0
    assert report["goals"] == []  # no LiteLLM, nothing to compare with
