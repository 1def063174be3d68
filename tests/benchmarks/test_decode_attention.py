"""benchmarks/decode_attention.py runs end to end at a tiny shape on the CPU (so that a lent
GPU's time is not spent on a broken script): four ways, each compiled when asked, the same
greedy tokens, the ratios, the table and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.scripts import run_script

SCRIPT = "benchmarks/decode_attention.py"


def test_the_decode_attention_benchmark_runs_four_ways(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out = tmp_path / "report.json"
    small = ["--shape", "tiny", "--rows", "4", "--prompt-tokens", "12", "--new-tokens", "8"]
    finished = run_script(SCRIPT, [*small, "--steps", "3", "--json", str(out)], cli_env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "skillswitch_sdpa" in finished.stdout
    report = json.loads(out.read_text())
    ways = report["ways"]
    assert [(w["attention"], w["compiled"]) for w in ways] == [
        ("sdpa", False),
        ("skillswitch_sdpa", False),
        ("sdpa", True),
        ("skillswitch_sdpa", True),
    ]
    assert all(w["same_greedy_tokens"] == 1.0 for w in ways)
    assert all(w["step_ms"] > 0 and not w["cuda_graph"] for w in ways)
    assert ways[1]["speedup_vs_transformers_sdpa"] > 0
    assert ways[3]["speedup_vs_transformers_sdpa"] > 0


def test_too_few_new_tokens_for_the_timed_steps_is_refused(cli_env: dict[str, str]) -> None:
    finished = run_script(SCRIPT, ["--steps", "16", "--new-tokens", "8"], cli_env, timeout=120)
    assert finished.returncode == 2
    assert "--steps 16 needs --new-tokens of at least 19" in finished.stderr
