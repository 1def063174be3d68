"""Run one of the repository's scripts (a benchmark) as its users do: a subprocess on this
interpreter, single-threaded, its exit code, stdout and stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_script(
    script: str, args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python <repo>/<script> <args>`` with ``env`` (OMP_NUM_THREADS=1 added)."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
