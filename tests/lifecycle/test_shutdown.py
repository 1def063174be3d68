"""What stopping a server leaves behind: nothing. ``skillswitch serve`` gets SIGTERM while
requests are in flight (streamed and not): each of them is answered in full (graceful drain),
the process exits 0, and its MCP subprocess is gone. In process, a server that answered
hundreds of requests and stopped holds no more file descriptors than before it started."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.cli_server import running_server
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve


def config_text(upstream: str, marker: str) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - {{name: slow, base_url: '{upstream}', model: slow-1500}}
  - {{name: fast, base_url: '{upstream}', model: echo}}
  - {{name: calculator, kind: tool, tool: builtin__calculator, skills: [math]}}
tools:
  servers:
    - {{name: builtin, command: [skillswitch-builtin-tools], env: {{LEAK_MARKER: '{marker}'}}}}
"""
    )


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


def test_sigterm_drains_requests_in_flight_and_leaves_no_process(
    upstream: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    marker = f"skillswitch-leak-{uuid.uuid4().hex}"
    config = tmp_path / "config.yaml"
    config.write_text(config_text(upstream, marker), encoding="utf-8")
    answers: list[str] = []
    failures: list[BaseException] = []

    def ask(base: str, stream: bool) -> None:
        try:
            with openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0) as client:
                messages: Any = [{"role": "user", "content": "take your time"}]
                if stream:
                    chunks = client.chat.completions.create(
                        model="slow", messages=messages, stream=True
                    )
                    answers.append(
                        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                    )
                else:
                    reply = client.chat.completions.create(model="slow", messages=messages)
                    answers.append(reply.choices[0].message.content or "")
        except BaseException as exc:  # reported below
            failures.append(exc)

    with running_server(config, cli_env, tmp_path / "server.log") as server:
        tool = httpx.post(
            f"{server.base}/v1/chat/completions",
            json={"model": "calculator", "messages": [{"role": "user", "content": "2 + 3"}]},
            timeout=60,
        )
        assert tool.status_code == 200, tool.text
        assert processes_with(marker), "the MCP server should be running"
        clients = [
            threading.Thread(target=ask, args=(server.base, index % 2 == 0)) for index in range(8)
        ]
        for client in clients:
            client.start()
        wait_for_in_flight(server.base, 8)
        assert server.stop() == 0
        for client in clients:
            client.join(30)
    assert failures == []
    assert answers == ["echo: take your time"] * 8
    assert processes_with(marker) == []
    log = server.log.read_text(encoding="utf-8")
    assert "Traceback" not in log


def wait_for_in_flight(base: str, count: int) -> None:
    """Until /metrics counts ``count`` chat requests in flight."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        gauge = 'skillswitch_requests_in_flight{endpoint="/v1/chat/completions"}'
        for line in text.splitlines():
            if line.startswith(gauge) and float(line.split()[-1]) >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"{count} requests were never in flight at once")


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_stopped_server_holds_no_descriptors(upstream: str, cache_root: Path) -> None:
    experts = f"experts:\n  - {{name: fast, base_url: '{upstream}', model: echo}}\n"

    def run_once(requests: int) -> None:
        switch = Switch.from_config(parse_config(DEFAULT_SKILLS + experts), cache_dir=cache_root)
        with (
            serve(create_app(switch), lifespan="on") as base,
            openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0) as client,
        ):
            for index in range(requests):
                messages: Any = [{"role": "user", "content": f"hello {index}"}]
                if index % 2:
                    list(
                        client.chat.completions.create(model="fast", messages=messages, stream=True)
                    )
                else:
                    client.chat.completions.create(model="fast", messages=messages)

    run_once(5)  # imports, caches and pools that live for the process
    before = open_descriptors()
    run_once(200)
    assert open_descriptors() <= before + 2  # (a descriptor the GC has not closed yet)
