"""Raw JSON-RPC frames against ``skillswitch mcp`` over stdio, as a client we did not write would
send them: malformed JSON, invalid UTF-8, frames that are not objects, batches, wrong types for
``jsonrpc``, ``id``, ``method`` and ``params``, unknown methods, tool calls with arguments of the
wrong types, responses nobody asked for, notifications, and huge frames (5 MB, deep nesting).

After every fuzzed frame a ``tools/list`` must be answered. What JSON-RPC 2.0 asks of each frame
is checked too: a request with a valid id gets a response with that id (a result or an error);
a frame that cannot be read as a request gets an error with id null; a notification or a
response gets nothing. Findings:

- crash: the server exited; hang: no answer to the ``tools/list`` within ``CHECK_TIMEOUT_S``;
- unanswered: a request with a valid id that got no response; unexplained: an error with id
  null that no frame asked for, or a frame that should have had one and did not;
- internal: an error -32603 (an exception in a handler) or a traceback in the server's log.

``make fuzz`` runs ``python -m tests.fuzz.mcp_frames --frames 10000``; the bounded test in
tests/fuzz/test_mcp_frames.py sends a few hundred with a fixed seed.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[2]
SKILLSWITCH = REPO / ".venv" / "bin" / "skillswitch"
BUILTIN_TOOLS = REPO / ".venv" / "bin" / "skillswitch-builtin-tools"
CHECK_TIMEOUT_S = 30.0
BOUNDED_FRAMES = 400  # make test's share; make fuzz runs this module with --frames 10000
HUGE_BYTES = 5 * 2**20
PROTOCOL = "2025-11-25"

OUR_TOOLS = ["ask", "route", "list_skills", "find_tools"]
UPSTREAM_TOOLS = ["builtin__calculator", "builtin__units", "builtin__clock"]
METHODS = [
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "initialize",
    "server/discover",
    "sampling/createMessage",
    "roots/list",
    "tools/nope",
    "",
    "x" * 300,
]
NOTIFICATIONS = [
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
    "notifications/nope",
]
EXPRESSIONS = [
    "17 * 23",
    "9**9**9",
    "(10**1000)**10000",
    "round(1, -10**9)",
    "1/0",
    "~" * 400 + "1",
]


def config_text(upstream: str) -> str:
    """The default skills, one healthy expert (the echo upstream) and the builtin tools server."""
    from tests.support.configs import DEFAULT_SKILLS

    return DEFAULT_SKILLS + (
        "experts:\n"
        f"  - {{name: oracle, base_url: '{upstream}', model: echo}}\n"
        "dispatch: {retry_attempts: 1}\n"
        "tools:\n"
        "  servers:\n"
        f"    - {{name: builtin, command: ['{BUILTIN_TOOLS}']}}\n"
    )


# --- frames -----------------------------------------------------------------------------------


class Frames:
    """Deterministic fuzzed frames (``random.Random(seed)``), each as the bytes of one line."""

    def __init__(self, seed: int, *, huge: bool = True) -> None:
        self.random = random.Random(seed)
        self.huge = huge
        self.serial = 0
        kinds: list[tuple[Callable[[], bytes], int]] = [
            (self.junk, 10),
            (self.not_an_object, 8),
            (self.batch, 4),
            (self.bad_envelope, 14),
            (self.any_method, 14),
            (self.tool_call, 24),
            (self.notification, 8),
            (self.response, 5),
            (self.valid, 8),
        ]
        if huge:
            kinds.append((self.huge_frame, 1))
        self.kinds = [kind for kind, _ in kinds]
        self.weights = [weight for _, weight in kinds]

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            kind = self.random.choices(self.kinds, self.weights)[0]
            yield kind.__name__, kind()

    # building blocks

    def next_id(self) -> int | str:
        """A fresh id, so that its response can be told apart (never reused)."""
        self.serial += 1
        return self.serial if self.random.random() < 0.5 else f"fuzz-{self.serial}"

    def text(self, size: int = 20) -> str:
        alphabets = [
            "abcdefghijklmnopqrstuvwxyz ",
            "0123456789+-*/().^ ",
            "".join(chr(c) for c in range(0x20, 0x7F)),
            "\x00\x01\x1f\u2028\u2029\ufeff\ufffd",
            "éß漢字🙂١٢٣١２",
            "\ud800\udfff",  # lone surrogates: json.dumps escapes them
        ]
        alphabet = self.random.choice(alphabets)
        return "".join(self.random.choice(alphabet) for _ in range(self.random.randint(0, size)))

    def value(self, depth: int = 0) -> Any:
        roll = self.random.random()
        if depth > 3 or roll < 0.45:
            return self.random.choice(
                [
                    None,
                    True,
                    False,
                    0,
                    -1,
                    self.random.randint(-(2**70), 2**70),
                    self.random.uniform(-1e9, 1e9),
                    float("nan"),
                    float("inf"),
                    self.text(),
                    "",
                ]
            )
        if roll < 0.7:
            return [self.value(depth + 1) for _ in range(self.random.randint(0, 4))]
        return {self.text(8): self.value(depth + 1) for _ in range(self.random.randint(0, 4))}

    def frame(self, message: Any) -> bytes:
        text = json.dumps(message, allow_nan=True)  # NaN and Infinity: not JSON, Python reads them
        return text.encode()

    def request(self, method: str, params: Any = None, *, with_params: bool = True) -> bytes:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id(), "method": method}
        if with_params:
            message["params"] = params
        return self.frame(message)

    # kinds of frames

    def junk(self) -> bytes:
        choice = self.random.randrange(6)
        if choice == 0:
            return bytes(
                self.random.randrange(256) for _ in range(self.random.randint(0, 60))
            ).replace(b"\n", b" ")
        if choice == 1:  # a valid request cut short
            whole = self.request("tools/call", {"name": "route", "arguments": {"request": "hi"}})
            return whole[: self.random.randrange(len(whole))]
        if choice == 2:
            return b"\xff\xfe" + self.request("ping")
        if choice == 3:
            return b""
        if choice == 4:
            return self.text(40).encode("utf-8", "surrogatepass")
        return b"{" * self.random.randint(1, 50)

    def not_an_object(self) -> bytes:
        value = self.value()
        while isinstance(value, dict):
            value = self.value()
        return self.frame(value)

    def batch(self) -> bytes:
        items: list[Any] = [
            {"jsonrpc": "2.0", "id": self.next_id(), "method": "ping"}
            for _ in range(self.random.randint(0, 3))
        ]
        if self.random.random() < 0.5:
            items.append(self.value())
        return self.frame(items)

    def bad_envelope(self) -> bytes:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id(), "method": "ping"}
        spoilt = self.random.choice(["jsonrpc", "id", "method", "params", "drop"])
        if spoilt == "drop":
            del message[self.random.choice(["jsonrpc", "method"])]
        elif spoilt == "id":
            message["id"] = self.random.choice(
                [None, 1.5, True, False, {}, [], [1], {"a": 1}, 2**80, -0.0, float("nan")]
            )
        elif spoilt == "method":
            message["method"] = self.random.choice([None, 5, [], {}, True, ["ping"]])
        elif spoilt == "jsonrpc":
            message["jsonrpc"] = self.random.choice(["1.0", "2", 2.0, None, "", "2.0 "])
        else:
            message["params"] = self.random.choice(
                [[1, 2], "params", 7, None, True, [], [{"name": "route"}]]
            )
        return self.frame(message)

    def any_method(self) -> bytes:
        method = self.random.choice(METHODS)
        params = self.value() if self.random.random() < 0.7 else {"_meta": self.value()}
        return self.request(method, params, with_params=self.random.random() < 0.8)

    def tool_call(self) -> bytes:
        name = self.random.choice(
            [*OUR_TOOLS, *UPSTREAM_TOOLS, "nope", "builtin__nope", "", "a" * 200, 42, None]
        )
        arguments: Any
        roll = self.random.random()
        if roll < 0.3:  # the right keys, values of any type
            keys = {
                "ask": ["request"],
                "route": ["request"],
                "find_tools": ["query", "k"],
                "builtin__calculator": ["expression"],
                "builtin__units": ["value", "from_unit", "to_unit"],
                "builtin__clock": ["timezone"],
            }.get(name if isinstance(name, str) else "", ["x"])
            arguments = {key: self.value() for key in keys}
        elif roll < 0.45 and name == "builtin__calculator":
            arguments = {"expression": self.random.choice(EXPRESSIONS)}
        elif roll < 0.55:
            arguments = {"request": self.text(60), "query": self.text(30)}
        else:
            arguments = self.value()
        params: Any = {"name": name, "arguments": arguments}
        if self.random.random() < 0.1:
            params = self.random.choice([[name, arguments], name, {"arguments": arguments}])
        return self.request("tools/call", params)

    def notification(self) -> bytes:
        method = self.random.choice(NOTIFICATIONS)
        params: Any = self.value()
        if method == "notifications/cancelled" and self.random.random() < 0.5:
            # never one of the fuzzed ids: a cancelled request gets no response by design
            params = {"requestId": self.random.choice(["nobody", 10**12, -1]), "reason": "fuzz"}
        return self.frame({"jsonrpc": "2.0", "method": method, "params": params})

    def response(self) -> bytes:
        if self.random.random() < 0.5:
            return self.frame({"jsonrpc": "2.0", "id": self.next_id(), "result": self.value()})
        error = {"code": self.random.choice([-32600, 1, "x"]), "message": self.text()}
        return self.frame({"jsonrpc": "2.0", "id": self.next_id(), "error": error})

    def valid(self) -> bytes:
        choice = self.random.randrange(4)
        if choice == 0:
            return self.request("ping", with_params=False)
        if choice == 1:
            return self.request("tools/list", {})
        if choice == 2:
            return self.request(
                "tools/call", {"name": "route", "arguments": {"request": self.text(40) or "hi"}}
            )
        return self.request(
            "tools/call", {"name": "builtin__calculator", "arguments": {"expression": "6*7"}}
        )

    def huge_frame(self) -> bytes:
        choice = self.random.randrange(5)
        big = "a" * HUGE_BYTES
        if choice == 0:
            return self.request("tools/call", {"name": "route", "arguments": {"request": big}})
        if choice == 1:
            return self.request("tools/call", {"name": "nope", "arguments": {"x": big}})
        if choice == 2:
            depth = self.random.choice([1_000, 100_000])
            return self.request("ping", with_params=False)[:-1] + (
                b', "params": ' + b"[" * depth + b"]" * depth + b"}"
            )
        if choice == 3:
            return self.request("ping", {f"k{i}": i for i in range(200_000)})
        return b"x" * HUGE_BYTES


# --- what JSON-RPC asks of a frame -------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    kind: str  # "answer": a response with id; "error": an error with id null; "nothing"
    id: Any = None


def expected(raw: bytes) -> Expected:
    """What JSON-RPC 2.0 asks of the server for ``raw`` (MCP: no batches, ids not null)."""
    if not raw.strip():
        return Expected("nothing")  # a blank line: skipped
    try:
        frame = json.loads(raw.decode("utf-8", "replace"))  # the server reads U+FFFD, as here
    except (ValueError, RecursionError):  # not JSON, nested too deeply, an int too long
        return Expected("error")
    if not isinstance(frame, dict):
        return Expected("error")  # a batch or a bare value
    has_id = "id" in frame
    frame_id = frame.get("id")
    valid_id = isinstance(frame_id, str) or (
        isinstance(frame_id, int) and not isinstance(frame_id, bool)
    )
    if "method" not in frame and ("result" in frame or "error" in frame):
        return Expected("nothing")  # a response: never answered
    if "method" in frame and not has_id:
        return Expected("nothing")  # a notification: never answered, even when malformed
    return Expected("answer", frame_id) if valid_id else Expected("error")


def id_key(value: Any) -> str:
    return json.dumps(value)


# --- the server -------------------------------------------------------------------------------


class Server:
    """``skillswitch mcp`` as a subprocess; stdout lines parsed by a reader thread."""

    def __init__(self, config: Path, cache_dir: Path, log: Path) -> None:
        env = {
            **os.environ,
            "SKILLSWITCH_CONFIG": str(config),
            "SKILLSWITCH_CACHE_DIR": str(cache_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [str(SKILLSWITCH), "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.responses: dict[str, dict[str, Any]] = {}
        self.null_errors: list[dict[str, Any]] = []
        self.garbage: list[bytes] = []
        self.internal: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, raw: bytes) -> bool:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(raw + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def pump(self, until: str | None, timeout: float) -> bool:
        """Take in what the server wrote, until the response with id ``until`` is in (True)."""
        deadline = time.monotonic() + timeout
        while until is None or until not in self.responses:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                line = self.lines.get(timeout=min(left, 0.05) if until is None else left)
            except queue.Empty:
                if until is None:
                    return True
                continue
            if line is None:
                return False
            self._take(line)
        return True

    def _take(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.garbage.append(line[:200])
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.garbage.append(line[:200])
            return
        if "method" in message:
            return  # a notification of the server's (tools list changed, logs)
        error = message.get("error")
        if isinstance(error, dict) and error.get("code") == -32603:
            self.internal.append(message)
        if message.get("id") is None:
            if error is None:
                self.garbage.append(line[:200])
            else:
                self.null_errors.append(message)
            return
        self.responses[id_key(message["id"])] = message

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin is not None:
            with suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_file.close()


@dataclass
class Report:
    frames: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    null_errors: int = 0
    ignored: int = 0
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    tracebacks: int = 0
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return (
            sum(
                len(found)
                for found in (
                    self.crashes,
                    self.hangs,
                    self.unanswered,
                    self.unexplained,
                    self.internal,
                    self.garbage,
                )
            )
            + self.tracebacks
        )

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_kind.items()))
        lines = [
            f"{self.frames} fuzzed MCP frames in {self.seconds:.0f} s ({kinds})",
            f"  answered requests: {self.answered}; errors with id null: {self.null_errors}; "
            f"notifications and responses ignored: {self.ignored}",
            f"  crashes: {len(self.crashes)}; hangs: {len(self.hangs)}; unanswered requests: "
            f"{len(self.unanswered)}; unexplained: {len(self.unexplained)}; internal errors: "
            f"{len(self.internal)}; non-JSON-RPC output: {len(self.garbage)}; tracebacks in the "
            f"log: {self.tracebacks}",
        ]
        for name in ("crashes", "hangs", "unanswered", "unexplained", "internal", "garbage"):
            for item in getattr(self, name)[:5]:
                lines.append(f"  {name}: {item}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "by_kind": dict(self.by_kind),
            "answered": self.answered,
            "null_errors": self.null_errors,
            "ignored": self.ignored,
            "crashes": self.crashes,
            "hangs": self.hangs,
            "unanswered": self.unanswered,
            "unexplained": self.unexplained,
            "internal": self.internal,
            "garbage": self.garbage,
            "tracebacks": self.tracebacks,
            "seconds": round(self.seconds, 1),
            "failures": self.failures,
        }


def _shown(raw: bytes) -> str:
    return repr(raw[:120]) + (f" ... ({len(raw)} bytes)" if len(raw) > 120 else "")


def handshake(server: Server) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": "init",
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "skillswitch-fuzz", "version": "0"},
        },
    }
    server.send(json.dumps(init).encode())
    if not server.pump('"init"', 120):
        raise RuntimeError(f"skillswitch mcp did not answer initialize; see {server.log}")
    server.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    warm = {"name": "route", "arguments": {"request": "warm up the encoder"}}
    server.send(
        json.dumps(
            {"jsonrpc": "2.0", "id": "warm", "method": "tools/call", "params": warm}
        ).encode()
    )
    if not server.pump('"warm"', 120):
        raise RuntimeError(f"skillswitch mcp did not answer a first route; see {server.log}")


def fuzz(server: Server, frames: Iterator[tuple[str, bytes]], count: int) -> Report:
    """Send ``count`` frames, each followed by a ``tools/list`` that must be answered."""
    report = Report()
    started = time.monotonic()
    pending: dict[str, bytes] = {}
    errors_before = errors_expected = len(server.null_errors)
    for index, (kind, raw) in zip(range(count), frames, strict=False):
        report.frames += 1
        report.by_kind[kind] += 1
        want = expected(raw)
        if want.kind == "answer":
            pending[id_key(want.id)] = raw
        elif want.kind == "error":
            errors_expected += 1
        else:
            report.ignored += 1
        check = f"check-{index}"
        sent = server.send(raw) and server.send(
            json.dumps({"jsonrpc": "2.0", "id": check, "method": "tools/list"}).encode()
        )
        if not sent or not server.pump(json.dumps(check), CHECK_TIMEOUT_S):
            where = f"after frame {index} ({kind}): {_shown(raw)}"
            (report.hangs if server.alive() else report.crashes).append(where)
            break
        tools = server.responses.pop(json.dumps(check)).get("result", {}).get("tools")
        if not isinstance(tools, list) or not tools:
            report.unexplained.append(f"tools/list after frame {index} listed no tools")
        # Errors with id null are written when the frame is read, before the check is read.
        if len(server.null_errors) != errors_expected:
            report.unexplained.append(
                f"frame {index} ({kind}): {len(server.null_errors)} errors with id null for "
                f"{errors_expected} frames that needed one: {_shown(raw)}"
            )
            errors_expected = len(server.null_errors)
    server.pump(None, 0.5)
    deadline = time.monotonic() + 60  # slow tool calls (ask) may still be answering
    for key, raw in pending.items():
        if key not in server.responses and not server.pump(
            key, max(0.0, deadline - time.monotonic())
        ):
            report.unanswered.append(f"id {key}: {_shown(raw)}")
    report.answered = sum(1 for key in pending if key in server.responses)
    report.null_errors = len(server.null_errors) - errors_before
    report.internal = [json.dumps(message)[:300] for message in server.internal]
    report.garbage = [repr(line) for line in server.garbage]
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def running_server(workdir: Path, cache_dir: Path) -> Iterator[Server]:
    """The echo upstream on loopback and ``skillswitch mcp`` over a config that uses it."""
    from tests.support.chat_app import chat_app
    from tests.support.servers import serve

    with serve(chat_app()) as base:
        config = workdir / "config.yaml"
        config.write_text(config_text(f"{base}/v1"))
        server = Server(config, cache_dir, workdir / "server.log")
        try:
            handshake(server)
            yield server
        finally:
            server.close()


def run(count: int, seed: int, *, huge: bool, workdir: Path, cache_dir: Path) -> Report:
    with running_server(workdir, cache_dir) as server:
        report = fuzz(server, iter(Frames(seed, huge=huge)), count)
    log = (workdir / "server.log").read_text("utf-8", "replace")
    report.tracebacks = log.count("Traceback (most recent call last)")
    return report


class FuzzReport(Protocol):
    @property
    def failures(self) -> int: ...

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def fuzz_main(
    doc: str,
    default_seed: int,
    run_frames: Callable[[int, int, bool, Path, Path], FuzzReport],
) -> None:
    """The command line of a frame fuzzer: ``--frames``, ``--seed``, ``--no-huge``, ``--json``;
    ``run_frames(count, seed, huge, workdir, cache_dir)`` fuzzes; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=default_seed)
    parser.add_argument("--no-huge", action="store_true", help="leave out the 5 MB frames")
    parser.add_argument("--json", type=Path, help="write the report here")
    options = parser.parse_args()
    cache_dir = REPO / ".cache" / "test"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        report = run_frames(
            options.frames, options.seed, not options.no_huge, Path(folder), cache_dir
        )
        if report.failures:
            print((Path(folder) / "server.log").read_text("utf-8", "replace")[-4000:])
    print(report.summary())
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps({"seed": options.seed, **report.to_dict()}, indent=2))
    sys.exit(1 if report.failures else 0)


def main() -> None:
    fuzz_main(
        __doc__,
        7,
        lambda count, seed, huge, workdir, cache_dir: run(
            count, seed, huge=huge, workdir=workdir, cache_dir=cache_dir
        ),
    )


if __name__ == "__main__":
    main()
