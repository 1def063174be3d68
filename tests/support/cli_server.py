"""``skillswitch serve`` as a real subprocess on a free loopback port, its log in a file."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class RunningServer:
    base: str
    process: subprocess.Popen[str]
    log: Path

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, then wait for the exit; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)


@contextmanager
def running_server(
    config: Path, env: dict[str, str], log: Path, args: Sequence[str] = ()
) -> Iterator[RunningServer]:
    """``skillswitch -v serve --config CONFIG [args]`` until the block ends (then SIGTERM)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = Path(sys.executable).parent / "skillswitch"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [str(command), "-v", "serve", "--config", str(config), "--port", str(port), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
        server = RunningServer(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_healthy(server)
            yield server
        finally:
            if process.poll() is None:
                server.stop()


def _wait_healthy(server: RunningServer, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"skillswitch serve exited: {server.log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"skillswitch serve did not start within {timeout_s} s")
