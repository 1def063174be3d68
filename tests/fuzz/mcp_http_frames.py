"""Raw JSON-RPC frames POSTed to ``/mcp`` of ``skillswitch serve`` (streamable HTTP), the same
fuzzed frames as tests/fuzz/mcp_frames.py sends over stdio, inside a 2025-11-25 session (the
handshake most clients still speak; the session id and protocol version in each request's
headers).

After every fuzzed frame a ``tools/list`` in the same session must be answered. What HTTP and
JSON-RPC ask of each frame is checked too. Findings:

- 5xx: any answer with a status of 500 or more; hang: no answer within ``TIMEOUT_S``;
- down: the ``tools/list`` after a frame was not answered (the server or the session is gone);
- unanswered: a request with a valid id that got a 2xx without a response of that id;
- unexplained: a frame that cannot be a request (not JSON, not an object, a bad envelope) that
  was accepted (2xx) without an error;
- internal: an error -32603 (an exception in a handler), or a traceback in the server's log.

``make fuzz`` runs ``python -m tests.fuzz.mcp_http_frames --frames 10000``; the bounded test in
tests/fuzz/test_mcp_frames.py sends a few hundred with a fixed seed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fuzz.mcp_frames import PROTOCOL, Frames, config_text, expected, fuzz_main

TIMEOUT_S = 30.0
BOUNDED_FRAMES = 300  # make test's share; make fuzz runs this module with --frames 10000
ACCEPT = "application/json, text/event-stream"


@dataclass
class Report:
    frames: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    tracebacks: int = 0
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return (
            len(self.server_errors)
            + len(self.hangs)
            + len(self.down)
            + len(self.unanswered)
            + len(self.unexplained)
            + len(self.internal)
            + self.tracebacks
        )

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.frames} frames to /mcp in {self.seconds:.0f} s ({statuses}): "
            f"{len(self.server_errors)} 5xx, {len(self.hangs)} hangs, {len(self.down)} down, "
            f"{len(self.unanswered)} unanswered, {len(self.unexplained)} unexplained, "
            f"{len(self.internal)} internal errors, {self.tracebacks} tracebacks"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "statuses": dict(self.statuses),
            "kinds": dict(self.kinds),
            "seconds": round(self.seconds, 1),
            "server_errors": self.server_errors[:20],
            "hangs": self.hangs[:20],
            "down": self.down[:20],
            "unanswered": self.unanswered[:20],
            "unexplained": self.unexplained[:20],
            "internal": self.internal[:20],
            "tracebacks": self.tracebacks,
            "failures": self.failures,
        }


def messages_of(response: httpx.Response) -> list[Any]:
    """The JSON-RPC messages of an answer: a JSON body, or the data of its SSE events."""
    kind = response.headers.get("content-type", "")
    text = response.text
    if not text.strip():
        return []
    try:
        if kind.startswith("text/event-stream"):
            # SSE lines end at CR, LF or CRLF only (str.splitlines also splits at U+2028).
            return [
                json.loads(line.removeprefix("data:").strip())
                for line in re.split(r"\r\n|\r|\n", text)
                if line.startswith("data:") and line.removeprefix("data:").strip()
            ]
        body = json.loads(text)
    except ValueError:
        return [text[:200]]
    return body if isinstance(body, list) else [body]


class Session:
    """One 2025-11-25 session on ``/mcp``: initialize, then frames with its headers."""

    def __init__(self, base: str) -> None:
        self.url = f"{base}/mcp"
        self.client = httpx.Client(timeout=TIMEOUT_S)
        self.headers = {"accept": ACCEPT, "content-type": "application/json"}
        init = {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "1"},
            },
        }
        response = self.post(json.dumps(init).encode())
        response.raise_for_status()
        self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = PROTOCOL
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        self.post(json.dumps(initialized).encode()).raise_for_status()

    def post(self, raw: bytes) -> httpx.Response:
        return self.client.post(self.url, content=raw, headers=self.headers)

    def alive(self, serial: int) -> bool:
        probe = {"jsonrpc": "2.0", "id": f"probe-{serial}", "method": "tools/list"}
        try:
            response = self.post(json.dumps(probe).encode())
        except httpx.HTTPError:
            return False
        ids = [m.get("id") for m in messages_of(response) if isinstance(m, dict)]
        return response.status_code == 200 and f"probe-{serial}" in ids

    def close(self) -> None:
        self.client.close()


def _shown(raw: bytes) -> str:
    return repr(raw[:160]) + (f"... ({len(raw)} bytes)" if len(raw) > 160 else "")


def fuzz(session: Session, frames: Iterator[tuple[str, bytes]], count: int) -> Report:
    report = Report()
    started = time.monotonic()
    for serial in range(count):
        kind, raw = next(frames)
        report.frames += 1
        report.kinds[kind] += 1
        shown = f"{kind}: {_shown(raw)}"
        try:
            response = session.post(raw)
        except httpx.TimeoutException:
            report.hangs.append(shown)
            continue
        except httpx.HTTPError as exc:
            report.down.append(f"{shown} -> {exc!r}")
            break
        status = response.status_code
        report.statuses[str(status)] += 1
        messages = messages_of(response)
        if status >= 500:
            report.server_errors.append(f"{shown} -> {status} {response.text[:200]}")
        for message in messages:
            if isinstance(message, dict) and (message.get("error") or {}).get("code") == -32603:
                report.internal.append(f"{shown} -> {json.dumps(message)[:300]}")
        want = expected(raw)
        if 200 <= status < 300:
            ids = [m.get("id") for m in messages if isinstance(m, dict)]
            errors = [m for m in messages if isinstance(m, dict) and "error" in m]
            if want.kind == "answer" and want.id not in ids:
                report.unanswered.append(f"{shown} -> {status} {response.text[:200]}")
            if want.kind == "error" and not errors:
                report.unexplained.append(f"{shown} -> {status} {response.text[:200]}")
        if not session.alive(serial):
            report.down.append(shown)
            break
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def running_session(workdir: Path, env: dict[str, str]) -> Iterator[Session]:
    """The echo upstream, ``skillswitch serve`` over a config that uses it, and a session."""
    from tests.support.chat_app import chat_app
    from tests.support.cli_server import running_server
    from tests.support.servers import serve

    with serve(chat_app()) as base:
        config = workdir / "config.yaml"
        config.write_text(config_text(f"{base}/v1"))
        with running_server(config, env, workdir / "server.log") as server:
            session = Session(server.base)
            try:
                yield session
            finally:
                session.close()


def run(count: int, seed: int, huge: bool, workdir: Path, cache_dir: Path) -> Report:
    env = {**os.environ, "SKILLSWITCH_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    with running_session(workdir, env) as session:
        report = fuzz(session, iter(Frames(seed, huge=huge)), count)
    log = (workdir / "server.log").read_text("utf-8", "replace")
    report.tracebacks = log.count("Traceback (most recent call last)")
    return report


def main() -> None:
    fuzz_main(__doc__, 11, run)


if __name__ == "__main__":
    main()
