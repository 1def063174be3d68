"""The CLI at its edges, as users meet them: addresses it cannot listen on, output piped into
a reader that stops early, Ctrl-C, and long lines. One message, a documented exit status, no
traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "serve-models"])
def test_a_port_in_use_is_one_message_and_exit_2(
    cli_env: dict[str, str], busy_port: int, command: str
) -> None:
    completed = run([command, "--port", str(busy_port)], cli_env)
    assert completed.returncode == 2, completed.stderr
    assert f"--port: 127.0.0.1:{busy_port} is in use" in completed.stderr
    assert "pass another --port" in completed.stderr
    assert "invalid command-line option" in completed.stderr
    assert "ERROR" not in completed.stderr  # uvicorn never started


def test_a_host_that_is_not_here_is_refused_before_starting(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "EDGE_KEY": "k"}
    resolved = run(["serve", "--host", "nohost.invalid", "--api-key-env", "EDGE_KEY"], env)
    assert resolved.returncode == 2
    assert "'nohost.invalid' is neither an address nor a name" in resolved.stderr
    unassigned = run(["serve", "--host", "192.0.2.1", "--api-key-env", "EDGE_KEY"], env)
    assert unassigned.returncode == 2
    assert "cannot listen on 192.0.2.1:8000" in unassigned.stderr


def test_route_lines_stay_whole_in_a_pipe(cli_env: dict[str, str]) -> None:
    completed = run(["route", "what is 15% of 80"], {**cli_env, "COLUMNS": "40"})
    assert completed.returncode == 0, completed.stderr
    candidates = next(line for line in completed.stdout.splitlines() if line.startswith("cand"))
    assert candidates.count(",") == 3  # four candidates on one line, not cut at 40 columns


def test_a_reader_that_stops_early_gets_no_traceback(cli_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "skillswitch", "config", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # `| head -0`: the reader is gone before the first write
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1  # click's status for a closed pipe
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


@pytest.fixture
def interruptible() -> Iterator[None]:
    """Children start with Ctrl-C's default action, as from a terminal. A shell without job
    control starts background jobs with SIGINT ignored, an exec'd child inherits that (Python
    then never raises KeyboardInterrupt), and these tests would fail when run that way."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a child gets SIG_DFL
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_while_serving_mcp_exits_130_without_a_traceback(cli_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "skillswitch", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(
        b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion":'
        b' "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}\n'
    )
    process.stdin.flush()
    assert b'"id":1' in process.stdout.readline()  # serving: the imports are long done
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    assert stderr.decode().strip().endswith("interrupted")


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_at_any_moment_of_a_command_gives_no_traceback(cli_env: dict[str, str]) -> None:
    # Early signals land while the modules load (a native extension's initialisation then fails
    # with an ImportError caused by the KeyboardInterrupt); later ones inside the command, or
    # during exit once it has answered (the interpreter then ends by the signal, silently).
    statuses = []
    for delay in (0.1, 0.2, 0.3, 0.45, 0.6, 0.8):
        process = subprocess.Popen(
            [sys.executable, "-m", "skillswitch", "route", "convert 5 miles to km"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert b"Traceback" not in stderr, (delay, stderr.decode())
        assert process.returncode in (0, 130, -signal.SIGINT), (delay, stderr.decode())
        statuses.append(process.returncode)
    assert 130 in statuses


def test_bad_input_found_mid_command_is_one_line_and_exit_2(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Each was a traceback with exit 1."""
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("text,label\nwhat is 2 plus 2,math\nconvert 5 miles,units\n")
    held_out_none = run(
        [
            "fit",
            "intents",
            "--train",
            str(tiny),
            "--out",
            str(tmp_path / "out"),
            "--method",
            "linear",
        ],
        cli_env,
    )
    assert held_out_none.returncode == 2
    assert "no validation items to choose the out-of-scope threshold on" in held_out_none.stderr
    unwritable = run(
        [
            *("fit", "intents", "--train", str(tiny), "--val", str(tiny), "--method", "linear"),
            *("--out", "/proc/skillswitch-cannot-write-here"),
        ],
        cli_env,
    )
    assert unwritable.returncode == 2
    assert unwritable.stderr.strip() == (
        "error: cannot write the classifier to /proc/skillswitch-cannot-write-here: No such file "
        "or directory; give --out a folder that can be created"
    )
    both = run(["ask", "2+2", "--skill", "math", "--expert", "calculator"], cli_env)
    assert both.returncode == 2
    assert "give skill= or expert=, not both (skill='math', expert='calculator')" in both.stderr
