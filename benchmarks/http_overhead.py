"""Added latency and sustained throughput of skillswitch's HTTP server, side by side with the
LiteLLM proxy, in front of the same fast OpenAI-compatible upstream, in one run.

Paths, reached by one load generator (raw asyncio HTTP/1.1 over keep-alive connections, in a
process of its own so that it shares no event loop with a server), all to one upstream:

- ``direct``: the upstream itself (a raw asyncio server in its own process; canned chat
  completion JSON and a canned SSE stream with usage, so that it costs little per request);
- ``bypass``: ``skillswitch serve`` with ``model`` = an expert's name (routing bypassed);
- ``routed``: ``skillswitch serve`` with ``model`` = ``skillswitch`` (the real MiniLM encoder
  routes every request; each text differs, so no cache can answer);
- ``litellm``: the LiteLLM proxy (``litellm[proxy]``, latest from PyPI, in ``.venv-litellm``;
  ``make litellm-venv``), 1 worker, no database, logging quiet, the upstream as
  ``openai/<model>``.

Both gateways check a bearer key (LiteLLM refuses to start without a master key); skillswitch
is configured as a gateway: one expert per request (``dispatch.max_experts: 1``).

Measured, non-streaming and streaming (time to the last byte):

1. latency: one client, sequential requests after a warm-up, the paths interleaved in rounds;
   added = path - direct (p50 and p99 apart, and per percentile);
2. throughput: closed-loop clients (``--clients``, 16 and 64) for ``--duration`` seconds:
   requests/s, errors, latency under load, and the CPU time each server spent per request
   (from /proc: steadier than rates when other processes share the cores);
3. hold: ``--hold-clients`` (1000) concurrent streaming clients on streams that last
   ``--hold-stream-s`` each: errors, streams open at once, and the server's memory (RSS of its
   process tree, sampled) at start, peak, end, and its growth from the first half to the second.
   skillswitch serve runs with ``--max-concurrency`` above the held clients (its default, 256,
   answers the rest 429).

Ratios are against LiteLLM (skillswitch / LiteLLM), with the issue's targets: added latency with
routing bypassed <= 1/10 of LiteLLM's and throughput >= 10x; routed, added latency <= 1/2.

    python benchmarks/http_overhead.py --json bench-results/http_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LITELLM_PYTHON = REPO / ".venv-litellm" / "bin" / "python"
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
FAST, HELD = "fast", "held"  # the upstream's two models: a quick answer, and a slow stream
TARGETS = ("direct", "bypass", "routed", "litellm")
LABELS = {
    "direct": "direct upstream",
    "bypass": "skillswitch (bypass)",
    "routed": "skillswitch (routed)",
    "litellm": "LiteLLM proxy",
}
MODES = ("plain", "stream")
# Targets of the issue: (compared path, quantity, bound). Added latency at most a share of
# LiteLLM's; throughput at least a multiple of LiteLLM's.
GOALS = (("bypass", "added_p50", 0.1), ("bypass", "throughput", 10.0), ("routed", "added_p50", 0.5))
REQUEST_TIMEOUT_S = 120.0
ROUTE_HEADER = "x-skillswitch-route"
HOLD_TARGETS = ("bypass", "litellm")  # named models: the slow streams of the upstream
SETTINGS = (
    *("quick", "clients", "duration", "warmup_s", "requests", "warmup", "rounds"),
    *("hold_clients", "hold_duration", "hold_stream_s", "max_concurrency", "encoder_threads"),
)


# --- the upstream: a raw asyncio HTTP/1.1 server with canned answers ----------------------------


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Bonjour le monde."},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        },
        separators=(",", ":"),
    ).encode()


def _stream_events(model: str) -> list[bytes]:
    """A chat.completion.chunk stream: role, three content pieces, finish, usage, [DONE]."""
    base = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1700000000}
    base["model"] = model

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk = {**base, "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def delta(content: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}

    return [
        event([delta({"role": "assistant", "content": ""})]),
        *(event([delta({"content": piece})]) for piece in ("Bonjour", " le", " monde.")),
        event([delta({}, "stop")]),
        event([], {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}),
        b"data: [DONE]\n\n",
    ]


class _Upstream(asyncio.Protocol):
    """One connection: requests parsed by Content-Length, answered from canned bytes. Model
    ``held`` streams its events ``hold_s`` apart in total (the hold test's long streams)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy: asyncio.Task[None] | None = None
        self.cache: dict[tuple[str, bool], bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy is not None:
            self.busy.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.busy is None and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length = _content_length(head + b"\r\n") or 0
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._answer(head.split(b" ", 2)[0], body)

    def _answer(self, method: bytes, body: bytes) -> None:
        assert self.transport is not None
        if method != b"post":  # health probes, /v1/models
            self.transport.write(_response(b"application/json", b'{"object":"list","data":[]}'))
            return
        try:
            request = json.loads(body)
            model, stream = str(request.get("model", FAST)), bool(request.get("stream"))
        except (ValueError, AttributeError):
            self.transport.write(_response(b"application/json", b'{"error":"bad json"}', 400))
            return
        if stream and model == HELD:
            self.busy = asyncio.get_running_loop().create_task(self._slow_stream(model))
            return
        key = (model, stream)
        if key not in self.cache:
            self.cache[key] = (
                _stream_head() + b"".join(_chunked(e) for e in _stream_events(model)) + b"0\r\n\r\n"
                if stream
                else _response(b"application/json", _completion(model))
            )
        self.transport.write(self.cache[key])

    def _write(self, data: bytes) -> bool:
        if self.transport is None:
            return False
        self.transport.write(data)
        return True

    async def _slow_stream(self, model: str) -> None:
        events = _stream_events(model)
        pause = self.hold_s / len(events)
        try:
            self._write(_stream_head())
            for event in events:
                await asyncio.sleep(pause)
                if not self._write(_chunked(event)):
                    return  # the client left
            self._write(b"0\r\n\r\n")
        finally:
            self.busy = None
        if self.buffer and self.transport is not None:
            self.data_received(b"")  # a pipelined request waited for this stream


def _content_length(head: bytes) -> int | None:
    """The Content-Length of a lower-cased head whose lines all end in CRLF."""
    marker = head.find(b"content-length:")
    return None if marker < 0 else int(head[marker + 15 : head.find(b"\r\n", marker)])


def _response(content_type: bytes, body: bytes, status: int = 200) -> bytes:
    reason = b"OK" if status == 200 else b"Bad Request"
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        reason,
        content_type,
        len(body),
        body,
    )


def _stream_head() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )


async def run_upstream(port: int, hold_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Upstream(hold_s), HOST, port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


# --- the load generator: raw asyncio HTTP/1.1 clients ------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where one path listens and what its requests say."""

    target: str
    port: int
    model: str
    key: str


def request_bytes(endpoint: Endpoint, text: str, stream: bool) -> bytes:
    message = {"role": "user", "content": text}
    body: dict[str, Any] = {"model": endpoint.model, "messages": [message]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    data = json.dumps(body).encode()
    return (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: {HOST}:{endpoint.port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {endpoint.key}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def requests_for(endpoint: Endpoint, stream: bool, count: int = 512) -> list[bytes]:
    """Texts that differ (no cache answers the router) and all route to translation."""
    return [
        request_bytes(endpoint, f"translate 'good morning, table {i}' into French", stream)
        for i in range(count)
    ]


class Connection:
    """One keep-alive connection; ``send`` returns whether the answer was a complete success:
    status 200 and a chat completion, or a stream ending in ``[DONE]`` without an error event."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, payload: bytes, stream: bool, opened: Callable[[], None] | None) -> bool:
        status, _, body = await self.exchange(payload, opened)
        if status != 200:
            return False
        if stream:
            return body.rstrip().endswith(b"data: [DONE]") and b'data: {"error"' not in body
        return b'"choices"' in body

    async def exchange(
        self, payload: bytes, opened: Callable[[], None] | None = None
    ) -> tuple[int, bytes, bytes]:
        """Status, lower-cased head and body of one request; ``opened`` is called once the head
        is in."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=2**22)
        assert self.reader is not None
        self.writer.write(payload)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        if opened is not None:
            opened()
        length = _content_length(head)
        if length is not None:
            body = await self.reader.readexactly(length)
        elif b"transfer-encoding: chunked" in head:
            body = await self._chunks()
        else:  # the server closes to end the body
            body = await self.reader.read()
            self.close()
        if b"connection: close" in head:
            self.close()
        return int(head[9:12]), head, body

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


_FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


async def latency_job(spec: dict[str, Any]) -> dict[str, Any]:
    """One client, sequential: per mode, every path warmed up, then the paths in rounds."""
    endpoints = [Endpoint(**e) for e in spec["endpoints"]]
    timings: dict[str, dict[str, list[float]]] = {e.target: {} for e in endpoints}
    errors: dict[str, dict[str, int]] = {e.target: {} for e in endpoints}
    per_round = max(1, spec["requests"] // spec["rounds"])
    for mode in MODES:
        stream = mode == "stream"
        payloads = {e.target: requests_for(e, stream) for e in endpoints}
        connections = {e.target: Connection(e.port) for e in endpoints}
        for e in endpoints:
            timings[e.target][mode] = []
            errors[e.target][mode] = 0
            for i in range(spec["warmup"]):
                await _timed(connections[e.target], payloads[e.target][i % 512], stream)
        for round_ in range(spec["rounds"]):
            for e in endpoints:
                for i in range(per_round):
                    payload = payloads[e.target][(round_ * per_round + i) % 512]
                    ok, ms = await _timed(connections[e.target], payload, stream)
                    if ok:
                        timings[e.target][mode].append(ms)
                    else:
                        errors[e.target][mode] += 1
        for connection in connections.values():
            connection.close()
    return {"timings_ms": timings, "errors": errors}


async def _timed(connection: Connection, payload: bytes, stream: bool) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            ok = await connection.send(payload, stream, None)
    except (*_FAILURES, TimeoutError):
        connection.close()
        ok = False
    return ok, (time.perf_counter() - started) * 1000


async def load_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop clients for warm-up + duration; counted: requests that end in the window."""
    endpoint = Endpoint(**spec["endpoint"])
    stream, clients = spec["stream"], spec["clients"]
    payloads = requests_for(endpoint, stream)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    window = (begin + spec["warmup_s"], begin + spec["warmup_s"] + spec["duration_s"])
    latencies: list[float] = []
    failures: dict[str, int] = {}
    counts = {"ok": 0, "ok_total": 0, "errors": 0, "errors_in_window": 0, "open": 0, "max_open": 0}
    cpu_started = time.process_time()
    open_samples: list[int] = []

    async def client(index: int) -> None:
        connection = Connection(endpoint.port)
        sent = 0
        is_open = [False]  # this client's stream has its head and is not over

        def mark() -> None:
            is_open[0] = True
            counts["open"] += 1
            counts["max_open"] = max(counts["max_open"], counts["open"])

        while loop.time() < window[1]:
            payload = payloads[(index * 7 + sent) % len(payloads)]
            sent += 1
            started = loop.time()
            is_open[0] = False
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    ok = await connection.send(payload, stream, mark if stream else None)
                problem = None if ok else "bad answer"
            except (*_FAILURES, TimeoutError) as exc:
                connection.close()
                ok, problem = False, type(exc).__name__
            if is_open[0]:
                counts["open"] -= 1
            ended = loop.time()
            if problem is not None:
                counts["errors"] += 1
                failures[problem] = failures.get(problem, 0) + 1
                if window[0] <= ended <= window[1]:
                    counts["errors_in_window"] += 1
                await asyncio.sleep(0.01)  # a refused connection must not spin
            else:
                counts["ok_total"] += 1
                if window[0] <= ended <= window[1]:
                    counts["ok"] += 1
                    latencies.append((ended - started) * 1000)
        connection.close()

    async def sample_open() -> None:
        await asyncio.sleep(max(0.0, window[0] - loop.time()))
        while loop.time() < window[1]:
            open_samples.append(counts["open"])
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_open())
    await asyncio.gather(*(client(i) for i in range(clients)))
    sampler.cancel()
    return {
        "clients": clients,
        "duration_s": spec["duration_s"],
        "completed": counts["ok"],
        "completed_total": counts["ok_total"],
        "client_cpu_s": time.process_time() - cpu_started,
        "requests_per_s": counts["ok"] / spec["duration_s"],
        "errors": counts["errors"],
        "errors_in_window": counts["errors_in_window"],
        "failures": failures,
        "latency_ms": latencies,
        "max_open_streams": counts["max_open"],
        "mean_open_streams": sum(open_samples) / len(open_samples) if open_samples else 0.0,
    }


def run_job(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A load job in a fresh process (this script, ``--role load``); its JSON result."""
    started = subprocess.run(
        [sys.executable, __file__, "--role", "load", "--job", kind],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{started.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(started.stdout)
    return result


# --- the servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    key: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def rss_mb(self) -> float:
        return tree_rss_kb(self.process.pid) / 1024

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def start(name: str, command: list[str], port: int, folder: Path, env: dict[str, str]) -> Server:
    log = folder / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own group: stopped with everything it started
        )
    return Server(name, process, port, log)


def wait_ready(server: Server, path: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise SystemExit(f"{server.name} exited ({code}):\n{server.tail()}")
        try:
            with socket.create_connection((HOST, server.port), timeout=5) as probe:
                probe.sendall(request)
                if probe.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{server.name} was not ready within {timeout:.0f} s:\n{server.tail()}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def tree(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process and its descendants have used."""
    ticks = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def skillswitch_config(upstream: int, encoder_threads: int | None = None) -> str:
    default = resources.files("skillswitch.config").joinpath("default.yaml").read_text()
    skills = default.split("# --- experts and tools of the default config")[0]
    if encoder_threads is not None:  # the default config's encoder, with this many threads
        marker = "    runtime: onnx\n"
        assert marker in skills, "the default config's encoder block changed"
        skills = skills.replace(marker, f"{marker}    threads: {encoder_threads}\n", 1)
    base = f"http://{HOST}:{upstream}/v1"
    # A gateway: one expert per request. `fast` serves every skill (what routed requests get);
    # `held` (the hold test's slow streams) serves a skill the benchmark's texts never route to.
    return (
        f"{skills}\nexperts:\n"
        f"  - {{name: {FAST}, base_url: '{base}', model: {FAST}}}\n"
        f"  - {{name: {HELD}, base_url: '{base}', model: {HELD}, skills: [data_analysis]}}\n"
        "dispatch: {max_experts: 1}\n"
    )


def litellm_config(upstream: int) -> str:
    base = f"http://{HOST}:{upstream}/v1"
    models = "".join(
        f"  - model_name: {name}\n"
        f"    litellm_params: {{model: openai/{name}, api_base: '{base}', api_key: sk-none}}\n"
        for name in (FAST, HELD)
    )
    return f"model_list:\n{models}litellm_settings:\n  set_verbose: false\n"


def package_version(python: Path, package: str) -> str:
    found = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or "unknown"


def importable(python: Path, module: str) -> bool:
    check = f"import importlib.util as u; exit(u.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", check], check=False).returncode == 0


@contextlib.contextmanager
def servers(targets: Sequence[str], args: argparse.Namespace) -> Iterator[dict[str, Server]]:
    """The upstream and every server the targets need, started, ready, and stopped at the end."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # Both gateways check a bearer key (LiteLLM refuses to start without a master key).
    key = "sk-" + secrets.token_hex(32)
    running: dict[str, Server] = {}
    with tempfile.TemporaryDirectory(prefix="http-overhead-") as name:
        folder = Path(name)
        try:
            up = free_port()
            command = [sys.executable, __file__, "--role", "upstream", "--port", str(up)]
            running["direct"] = start(
                "upstream", [*command, "--hold-stream-s", str(args.hold_stream_s)], up, folder, env
            )
            if {"bypass", "routed"} & set(targets):
                config = folder / "skillswitch.yaml"
                config.write_text(skillswitch_config(up, args.encoder_threads))
                port = free_port()
                command = [
                    sys.executable, "-m", "skillswitch", "serve", "--config", str(config),
                    "--port", str(port), "--max-concurrency", str(args.max_concurrency),
                    "--api-key-env", "SKILLSWITCH_BENCH_KEY",
                ]  # fmt: skip
                server = start(
                    "skillswitch", command, port, folder, {**env, "SKILLSWITCH_BENCH_KEY": key}
                )
                server.key = key
                server.info = {
                    "version": package_version(Path(sys.executable), "skillswitch"),
                    "uvloop": importable(Path(sys.executable), "uvloop"),
                    "httptools": importable(Path(sys.executable), "httptools"),
                    "max_concurrency": args.max_concurrency,
                }
                running["bypass"] = running["routed"] = server
            if "litellm" in targets:
                python = Path(args.litellm_python)
                if not python.exists():
                    raise SystemExit(f"{python} not found; run `make litellm-venv` first")
                config = folder / "litellm.yaml"
                config.write_text(litellm_config(up))
                port = free_port()
                command = [
                    str(python.parent / "litellm"), "--config", str(config), "--host", HOST,
                    "--port", str(port), "--num_workers", "1",
                ]  # fmt: skip
                quiet = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
                server = start(
                    "litellm", command, port, folder, {**env, **quiet, "LITELLM_MASTER_KEY": key}
                )
                server.key = key
                server.info = {
                    "version": package_version(python, "litellm"),
                    "uvloop": importable(python, "uvloop"),
                    "httptools": importable(python, "httptools"),
                    "workers": 1,
                }
                running["litellm"] = server
            ready = {"upstream": "/v1/models", "skillswitch": "/healthz"}
            for server in {id(s): s for s in running.values()}.values():
                log(f"waiting for {server.name} on port {server.port}")
                wait_ready(server, ready.get(server.name, "/health/liveliness"))
                server.info["rss_mb_ready"] = round(server.rss_mb(), 1)
            yield running
        finally:
            for server in {id(s): s for s in running.values()}.values():
                stop(server)


def check_routes(running: dict[str, Server], targets: Sequence[str]) -> None:
    """One request per path before measuring: every path answers, and skillswitch's route is
    the intended one (expert ``fast``, routed to translation or named)."""

    async def ask(endpoint: Endpoint) -> tuple[int, bytes, bytes]:
        connection = Connection(endpoint.port)
        try:
            text = "translate 'good morning' into French"
            return await connection.exchange(request_bytes(endpoint, text, False))
        finally:
            connection.close()

    for target in targets:
        status, head, body = asyncio.run(ask(endpoint_of(running, target, FAST)))
        if status != 200:
            raise SystemExit(f"{target}: status {status}: {body[:2000]!r}")
        if target in ("bypass", "routed"):
            route = next(
                (line for line in head.decode().splitlines() if line.startswith(ROUTE_HEADER)), ""
            )
            want = "route=expert" if target == "bypass" else "route=auto;skill=translation"
            if want not in route or f"experts={FAST}" not in route:
                raise SystemExit(f"{target}: unexpected route {route!r}")


def endpoint_of(running: dict[str, Server], target: str, model: str) -> Endpoint:
    name = "skillswitch" if target == "routed" else model
    return Endpoint(target, running[target].port, name, running[target].key)


# --- the measurements --------------------------------------------------------------------------


def measure_latency(
    running: dict[str, Server], targets: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    from skillswitch.evals.metrics import percentiles

    log(f"latency: 1 client, {args.requests} requests per path and mode")
    spec = {
        "endpoints": [endpoint_of(running, t, FAST).__dict__ for t in targets],
        "requests": args.requests,
        "warmup": args.warmup,
        "rounds": args.rounds,
    }
    raw = run_job("latency", spec)
    results: dict[str, Any] = {}
    for mode in MODES:
        stats = {t: percentiles(raw["timings_ms"][t][mode]) for t in targets}
        rows: dict[str, Any] = {}
        for target in targets:
            row = {**stats[target], "errors": raw["errors"][target][mode]}
            if target != "direct" and "direct" in stats:
                base = stats["direct"]
                row["added_ms"] = {
                    key: row[key] - base[key] for key in ("p50", "p90", "p99", "mean")
                }
            rows[target] = row
        results[mode] = rows
    return results


def measure_throughput(
    running: dict[str, Server], targets: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    from skillswitch.evals.metrics import percentiles

    results: dict[str, Any] = {mode: {t: {} for t in targets} for mode in MODES}
    for mode in MODES:
        for clients in args.clients:
            for target in targets:
                log(f"throughput: {LABELS[target]}, {mode}, {clients} clients")
                spec = {
                    "endpoint": endpoint_of(running, target, FAST).__dict__,
                    "stream": mode == "stream",
                    "clients": clients,
                    "warmup_s": args.warmup_s,
                    "duration_s": args.duration,
                }
                upstream, server = running["direct"], running[target]
                cpu = tree_cpu_s(server.process.pid), tree_cpu_s(upstream.process.pid)
                raw = run_job("load", spec)
                spent = tree_cpu_s(server.process.pid) - cpu[0]
                spent_upstream = tree_cpu_s(upstream.process.pid) - cpu[1]
                raw["latency_ms"] = percentiles(raw.pop("latency_ms"))
                # CPU per request: robust when other processes share the cores (rates are not)
                served = max(raw["completed_total"], 1)
                raw["server_cpu_ms_per_request"] = spent * 1000 / served
                raw["upstream_cpu_ms_per_request"] = spent_upstream * 1000 / served
                raw["client_cpu_ms_per_request"] = raw.pop("client_cpu_s") * 1000 / served
                results[mode][target][str(clients)] = raw
    return results


def measure_hold(
    running: dict[str, Server], targets: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    from skillswitch.evals.metrics import percentiles

    results: dict[str, Any] = {}
    for target in targets:
        server = running[target]
        clients, seconds = args.hold_clients, args.hold_duration
        log(f"hold: {LABELS[target]}, {clients} streaming clients, {seconds} s")
        samples: list[tuple[float, float]] = []
        done = threading.Event()
        before = server.rss_mb()
        sampler = threading.Thread(target=sample_rss, args=(server, samples, done), daemon=True)
        sampler.start()
        spec = {
            "endpoint": endpoint_of(running, target, HELD).__dict__,
            "stream": True,
            "clients": args.hold_clients,
            "warmup_s": args.hold_stream_s,
            "duration_s": args.hold_duration,
        }
        try:
            raw = run_job("load", spec)
        finally:
            done.set()
            sampler.join()
        time.sleep(2)
        after = server.rss_mb()
        window = [rss for at, rss in samples if at >= args.hold_stream_s]
        half = len(window) // 2
        raw["latency_ms"] = percentiles(raw.pop("latency_ms"))
        results[target] = {
            **raw,
            "stream_s": args.hold_stream_s,
            "rss_mb": {
                "before": round(before, 1),
                "peak": round(max((rss for _, rss in samples), default=before), 1),
                "end_of_load": round(samples[-1][1] if samples else before, 1),
                "after_idle_2s": round(after, 1),
                "first_half_peak": round(max(window[:half], default=0.0), 1),
                "second_half_peak": round(max(window[half:], default=0.0), 1),
            },
            "process_tree": True,
        }
    return results


def sample_rss(server: Server, samples: list[tuple[float, float]], done: threading.Event) -> None:
    """(seconds since the start, RSS MB of the server's process tree) every 0.25 s."""
    begin = time.monotonic()
    while not done.is_set():
        samples.append((time.monotonic() - begin, server.rss_mb()))
        done.wait(0.25)


def compare(latency: dict[str, Any], throughput: dict[str, Any], clients: Sequence[int]) -> Any:
    """skillswitch / LiteLLM per mode, and the issue's targets checked."""
    ratios: dict[str, Any] = {}
    goals: list[dict[str, Any]] = []
    for mode in MODES:
        lat, thr = latency.get(mode, {}), throughput.get(mode, {})
        if "litellm" not in lat or "direct" not in lat:
            continue
        peer = lat["litellm"]["added_ms"]
        peer_max = max(thr["litellm"][str(c)]["requests_per_s"] for c in clients)
        for target in ("bypass", "routed"):
            if target not in lat:
                continue
            added = lat[target]["added_ms"]
            best = max(thr[target][str(c)]["requests_per_s"] for c in clients)
            ratios.setdefault(mode, {})[target] = {
                "added_p50": _ratio(added["p50"], peer["p50"]),
                "added_p99": _ratio(added["p99"], peer["p99"]),
                "throughput": {
                    **{
                        str(c): _ratio(
                            thr[target][str(c)]["requests_per_s"],
                            thr["litellm"][str(c)]["requests_per_s"],
                        )
                        for c in clients
                    },
                    "max": _ratio(best, peer_max),
                },
            }
        for target, quantity, bound in GOALS:
            if target not in ratios.get(mode, {}):
                continue
            got = ratios[mode][target][quantity]
            value = got["max"] if isinstance(got, dict) else got
            met = value is not None and (
                value >= bound if quantity == "throughput" else value <= bound
            )
            goals.append(
                {
                    "mode": mode,
                    "target": target,
                    "quantity": quantity,
                    "bound": bound,
                    "ratio": value,
                    "met": met,
                }
            )
    return ratios, goals


def _ratio(value: float, base: float) -> float | None:
    return value / base if base > 0 else None


# --- the report --------------------------------------------------------------------------------


def print_table(report: dict[str, Any], targets: Sequence[str], clients: Sequence[int]) -> None:
    """Latency at 1 client; per client count, requests/s, errors and the server's CPU ms per
    request (the upstream's own for the direct path)."""
    latency, throughput = report["latency"], report["throughput"]
    print(
        f"{'path':<22}{'mode':<8}{'p50 ms':>8}{'p99 ms':>8}{'+p50':>8}{'+p99':>8}"
        + "".join(f"{f'{c}cl req/s':>11}{'err':>5}{'cpu ms':>8}" for c in clients)
    )
    for mode in MODES:
        for target in targets:
            row = latency[mode][target]
            added = row.get("added_ms", {"p50": 0.0, "p99": 0.0})
            line = (
                f"{LABELS[target]:<22}{mode:<8}{row['p50']:>8.2f}{row['p99']:>8.2f}"
                f"{added['p50']:>+8.2f}{added['p99']:>+8.2f}"
            )
            for c in clients:
                load = throughput[mode][target][str(c)]
                cpu = load["server_cpu_ms_per_request"]
                line += f"{load['requests_per_s']:>11.1f}{load['errors']:>5}{cpu:>8.2f}"
            print(line)
    for mode, rows in report["ratios"].items():
        for target, ratio in rows.items():
            rps = " ".join(
                f"{k}: {v:.1f}x" if v is not None else f"{k}: -"
                for k, v in ratio["throughput"].items()
            )
            print(
                f"{LABELS[target]} / LiteLLM, {mode}: added p50 {_show(ratio['added_p50'])}, "
                f"added p99 {_show(ratio['added_p99'])}, requests/s {rps}"
            )
    for goal in report["goals"]:
        sign = ">=" if goal["quantity"] == "throughput" else "<="
        print(
            f"target {LABELS[goal['target']]} {goal['mode']} {goal['quantity']} {sign} "
            f"{goal['bound']}x LiteLLM: {_show(goal['ratio'])} "
            f"{'MET' if goal['met'] else 'MISSED'}"
        )
    for target, hold in report["hold"].items():
        rss = hold["rss_mb"]
        print(
            f"hold {LABELS[target]}: {hold['clients']} streaming clients, {hold['completed']} "
            f"streams in {hold['duration_s']} s ({hold['requests_per_s']:.0f}/s), errors "
            f"{hold['errors']}, open at once max {hold['max_open_streams']} mean "
            f"{hold['mean_open_streams']:.0f}; RSS MB before {rss['before']}, peak {rss['peak']}, "
            f"halves {rss['first_half_peak']} -> {rss['second_half_peak']}, "
            f"after {rss['after_idle_2s']}"
        )


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def log(message: str) -> None:
    print(f"[http_overhead] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated subset of {TARGETS}"
    )
    parser.add_argument("--clients", default="16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="seconds before counting")
    parser.add_argument("--requests", type=int, default=1000, help="latency: per path and mode")
    parser.add_argument("--warmup", type=int, default=100, help="latency: warm-up requests")
    parser.add_argument("--rounds", type=int, default=5, help="latency: interleaved rounds")
    parser.add_argument("--hold-clients", type=int, default=1000, help="0 skips the hold test")
    parser.add_argument("--hold-duration", type=float, default=30.0)
    parser.add_argument("--hold-stream-s", type=float, default=5.0, help="length of each stream")
    parser.add_argument(
        "--hold-targets", default="bypass", help=f"paths held, a subset of {HOLD_TARGETS}"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        help="skillswitch serve's limit of requests in flight (default: above --hold-clients)",
    )
    parser.add_argument(
        "--encoder-threads",
        type=int,
        help="skillswitch's router.encoder.threads (default: the config's default, 1)",
    )
    parser.add_argument("--litellm-python", default=str(LITELLM_PYTHON))
    parser.add_argument("--role", choices=("main", "upstream", "load"), default="main",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--job", choices=("latency", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup, args.rounds = 100, 20, 2
        args.duration, args.warmup_s = 3.0, 1.0
        args.hold_clients = min(args.hold_clients, 200)
        args.hold_duration, args.hold_stream_s = 6.0, 2.0
    args.clients = [int(c) for c in str(args.clients).split(",") if c]
    if args.max_concurrency is None:
        args.max_concurrency = max(256, args.hold_clients + 64)
    return args


def main() -> None:
    args = parse_args()
    if args.role == "upstream":
        asyncio.run(run_upstream(args.port, args.hold_stream_s))
        return
    if args.role == "load":
        job = latency_job if args.job == "latency" else load_job
        print(json.dumps(asyncio.run(job(json.load(sys.stdin)))))
        return
    targets = [t for t in TARGETS if t in args.targets.split(",")]
    unknown = set(args.targets.split(",")) - set(TARGETS)
    if unknown or "direct" not in targets:
        raise SystemExit(f"--targets: give a subset of {TARGETS} that includes direct")
    held = [t for t in args.hold_targets.split(",") if t in targets and t in HOLD_TARGETS]
    with servers(targets, args) as running:
        check_routes(running, targets)
        latency = measure_latency(running, targets, args)
        throughput = measure_throughput(running, targets, args)
        hold = measure_hold(running, held, args) if args.hold_clients > 0 else {}
        info = {name: running[name].info for name in targets if name != "direct"}
    ratios, goals = compare(latency, throughput, args.clients)
    report = {
        "benchmark": "http_overhead",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": {key: getattr(args, key) for key in SETTINGS},
        "servers": info,
        "latency": latency,
        "throughput": throughput,
        "ratios": ratios,
        "goals": goals,
        "hold": hold,
    }
    print_table(report, targets, args.clients)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
