"""The CLI at its edges, as users meet them: addresses it cannot listen on, output piped into
a reader that stops early, Ctrl-C, and long lines. One message, a documented exit status, no
traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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
