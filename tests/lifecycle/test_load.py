"""1000 clients at once on one ``skillswitch serve`` on this 2-core machine, in waves: every
request is answered (streamed and not, by a remote expert and by an MCP tool expert), memory
stops growing once the server has served its first wave, the connections of a wave leave no
descriptors behind, every tool call shares one MCP session (one subprocess, not one per call),
and SIGTERM afterwards exits 0 leaving no subprocess.

``SKILLSWITCH_LOAD_CLIENTS`` and ``SKILLSWITCH_LOAD_WAVES`` change the size (1000 and 3 by
default); the figures of each wave are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.lifecycle.test_shutdown import processes_with
from tests.support.cli_server import running_server
from tests.support.configs import DEFAULT_SKILLS

CLIENTS = int(os.environ.get("SKILLSWITCH_LOAD_CLIENTS", "1000"))
WAVES = int(os.environ.get("SKILLSWITCH_LOAD_WAVES", "3"))
# The second wave onwards may add this much to the server's memory (allocator noise, caches
# that fill in steps); a leak of even 10 KB per request would add 10 MB per wave.
RSS_GROWTH_LIMIT_MB = 8.0
POOL = 100  # idle keep-alive connections an OpenAI expert keeps to its upstream, at most


def config_text(upstream: str, marker: str) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - {{name: slow, base_url: '{upstream}', model: slow-400}}
  - {{name: calculator, kind: tool, tool: builtin__calculator, skills: [math]}}
tools:
  servers:
    - {{name: builtin, command: [skillswitch-builtin-tools], env: {{LEAK_MARKER: '{marker}'}}}}
"""
    )


@dataclass
class Wave:
    """What one wave of concurrent clients got back."""

    statuses: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    seconds: float = 0.0


def request_body(index: int) -> tuple[dict[str, object], str]:
    """The body of client ``index`` and the text its answer must hold: 45% streamed, 45% not,
    10% a calculation by the MCP tool expert."""
    if index % 10 == 9:
        return {
            "model": "calculator",
            "messages": [{"role": "user", "content": f"{index} + 1"}],
        }, str(index + 1)
    body = {
        "model": "slow",
        "messages": [{"role": "user", "content": f"client {index}"}],
        "stream": index % 2 == 0,
    }
    return body, f"echo: client {index}"


async def one_client(client: httpx.AsyncClient, base: str, index: int, wave: Wave) -> None:
    body, expected = request_body(index)
    url = f"{base}/v1/chat/completions"
    try:
        if body.get("stream"):
            async with client.stream("POST", url, json=body) as response:
                text = (await response.aread()).decode()
            ok = response.status_code == 200 and text.rstrip().endswith("data: [DONE]")
            ok = ok and expected in streamed_text(text)
        else:
            response = await client.post(url, json=body)
            text = response.text
            ok = response.status_code == 200 and expected in response.json()["choices"][0][
                "message"
            ].get("content", "")
        wave.statuses[str(response.status_code)] += 1
        if not ok:
            wave.wrong.append(f"client {index}: {response.status_code} {text[:300]}")
    except httpx.HTTPError as exc:
        wave.statuses[type(exc).__name__] += 1
        wave.wrong.append(f"client {index}: {exc!r}")


def streamed_text(events: str) -> str:
    """The text of an SSE chat stream's content deltas, in order."""
    parts = []
    for line in events.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line.removeprefix("data: "))["choices"]:
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def run_wave(base: str, clients: int) -> Wave:
    """``clients`` requests at once, one connection each; every connection closed after."""
    wave = Wave()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    started = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await asyncio.gather(*(one_client(client, base, index, wave) for index in range(clients)))
    wave.seconds = time.monotonic() - started
    return wave


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kb / 1024


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_descriptors(pid: int, ceiling: int, timeout_s: float = 10) -> int:
    """The process's descriptor count once closed connections are gone (or after timeout)."""
    deadline = time.monotonic() + timeout_s
    count = descriptors(pid)
    while count > ceiling and time.monotonic() < deadline:
        time.sleep(0.1)
        count = descriptors(pid)
    return count


def test_a_thousand_concurrent_clients_in_waves(
    upstream: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    marker = f"skillswitch-load-{uuid.uuid4().hex}"
    config = tmp_path / "config.yaml"
    config.write_text(config_text(upstream, marker), encoding="utf-8")
    args = ["--max-concurrency", str(CLIENTS + 100)]
    with running_server(config, cli_env, tmp_path / "server.log", args) as server:
        pid = server.process.pid
        warm = asyncio.run(run_wave(server.base, 20))  # MCP session, pools, imports
        assert not warm.wrong, warm.wrong
        fds_before = descriptors(pid)
        rss, fds = [], []
        for number in range(1, WAVES + 1):
            wave = asyncio.run(run_wave(server.base, CLIENTS))
            rss.append(tree_rss_mb(pid))
            fds.append(settled_descriptors(pid, (fds[0] if fds else fds_before + POOL) + 2))
            print(
                f"wave {number}: {CLIENTS} clients in {wave.seconds:.1f} s, {dict(wave.statuses)}, "
                f"RSS {rss[-1]:.1f} MB, {fds[-1]} descriptors ({fds_before} before the waves)"
            )
            assert not wave.wrong, f"{len(wave.wrong)} wrong answers, first: {wave.wrong[:3]}"
            assert wave.statuses == Counter({"200": CLIENTS})
            assert len(processes_with(marker)) == 1  # one MCP session for every tool call
        # The clients' connections are all closed; what stays open is the expert's pool of
        # idle keep-alive connections to its upstream, which a wave refills but never grows.
        assert fds[0] <= fds_before + POOL + 2
        assert fds[-1] <= fds[0] + 2, fds
        assert rss[-1] - rss[0] <= RSS_GROWTH_LIMIT_MB * (WAVES - 1), rss
        assert server.stop() == 0
    assert processes_with(marker) == []
    assert "Traceback" not in server.log.read_text(encoding="utf-8")
