"""``skillswitch ask`` as users run it: the default config's builtin tools answer (a real MCP
server over stdio), the answer on stdout, the route on stderr, and an exit status for each end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run
from tests.support.configs import DEFAULT_SKILLS


def test_ask_prints_the_answer_and_the_route(cli_env: dict[str, str]) -> None:
    completed = run(["ask", "What is negative 5 times 3?"], cli_env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "-15\n"
    assert "math" in completed.stderr
    assert "-> calculator" in completed.stderr
    assert "MCP server" not in completed.stderr  # no tool-server chatter without --verbose


def test_ask_json_from_stdin_and_quiet(cli_env: dict[str, str]) -> None:
    completed = run(["ask", "-", "--json"], cli_env, stdin=b"Convert 26.2 miles to kilometres")
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer["text"] == "26.2 mile = 42.1648 km"
    assert answer["trace"]["schema"] == "skillswitch.trace/1"
    assert [r["expert"] for r in answer["trace"]["results"] if r["ok"]] == ["converter"]
    quiet = run(["ask", "-q", "What is 2^10?"], cli_env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "1024\n", "")


def test_ask_streams_and_names_the_expert_that_declined(cli_env: dict[str, str]) -> None:
    completed = run(
        ["ask", "--stream", "How many days are there between 3 March 2025 and 18 June 2025?"],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "2025-03-03 to 2025-06-18: 107 days (15 weeks and 2 days)\n"
    assert "-> calendar" in completed.stderr
    assert "declined: clock" in completed.stderr


def test_ask_out_of_scope_is_an_answer(cli_env: dict[str, str]) -> None:
    completed = run(["ask", "Turn off the kitchen lights"], cli_env)
    assert completed.returncode == 0, completed.stderr
    assert "can't help" in completed.stdout
    assert "out of scope" in completed.stderr


@pytest.mark.parametrize(
    ("args", "status", "fragments"),
    [
        # Every expert declined: each one's reason, no answer on stdout.
        (
            ["ask", "Prove that there are infinitely many primes"],
            1,
            ["no expert answered", "expert 'calculator'", "rephrase it"],
        ),
        (["ask", "Why does my SQL query return duplicate rows?"], 1, ["no expert serves"]),
        (["ask", "   "], 2, ["empty or only whitespace"]),
        (["ask", "hi", "--expert", "calculater"], 2, ["unknown expert 'calculater'"]),
        (["ask", "hi", "--skill", "cooking"], 2, ["unknown skill 'cooking'"]),
        (["ask", "hi", "--json", "--stream"], 2, ["drop --stream"]),
        (["ask", "hi", "--temperature", "3"], 2, ["temperature is 3.0; give a number from 0 to 2"]),
        (["ask", "hi", "--max-tokens", "0"], 2, ["max_tokens is 0; give a whole number from 1"]),
        (["ask", "hi", "--response-format", "yaml"], 2, ["'yaml' is neither 'json_object' nor"]),
        (["ask", "hi", "--response-format", "nope.json"], 2, ["cannot read nope.json: No such"]),
        (
            ["ask", "What is 5 times 3?", "--response-format", "json_object"],
            1,
            ["failed: the answer from calculator is not in the form", "set dispatch.aggregator"],
        ),
    ],
)
def test_ask_failures_and_bad_input_exit_with_one_message(
    cli_env: dict[str, str], args: list[str], status: int, fragments: list[str]
) -> None:
    completed = run(args, cli_env)
    assert completed.returncode == status, completed.stderr
    assert completed.stdout == ""
    for fragment in fragments:
        assert fragment in completed.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_ask_sends_the_sampling_flags_to_the_experts(
    cli_env: dict[str, str],
    upstream: str,
    chat_requests: list[dict[str, Any]],
    tmp_path: Path,
    stream: bool,
) -> None:
    config = tmp_path / "skillswitch.yaml"
    config.write_text(
        DEFAULT_SKILLS
        + f"experts:\n  - {{name: echo, base_url: '{upstream}', model: echo,"
        + " sampling: {temperature: 0.9, top_p: 0.5}}\n"
    )
    before = len(chat_requests)
    args = ["ask", "hi there", "-c", str(config), "--temperature", "0", "--max-tokens", "5"]
    completed = run([*args, "--seed", "7", *(["--stream"] if stream else [])], cli_env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "echo: hi there\n"
    (sent,) = chat_requests[before:]
    assert {k: sent.get(k) for k in ("temperature", "top_p", "max_tokens", "seed")} == {
        "temperature": 0,
        "top_p": 0.5,
        "max_tokens": 5,
        "seed": 7,
    }


def test_ask_answers_in_the_json_schema_of_a_file(
    cli_env: dict[str, str], upstream: str, chat_requests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "skillswitch.yaml"
    config.write_text(
        DEFAULT_SKILLS + f"experts:\n  - {{name: echo, base_url: '{upstream}', model: echo}}\n"
    )
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    schema_file = tmp_path / "echo reply.json"
    schema_file.write_text(json.dumps(schema))
    before = len(chat_requests)
    args = ["ask", "hi there", "-c", str(config), "--response-format", str(schema_file)]
    completed = run(args, cli_env)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"echo": "hi there"}
    (sent,) = chat_requests[before:]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "echo_reply", "schema": schema},
    }


def test_a_stream_that_dies_midway_is_marked_incomplete(
    cli_env: dict[str, str], upstream: str, tmp_path: Path
) -> None:
    config = tmp_path / "skillswitch.yaml"
    config.write_text(
        DEFAULT_SKILLS
        + f"experts:\n  - {{name: dropper, base_url: '{upstream}', model: drop-stream}}\n"
        + "dispatch: {retry_attempts: 1}\n"
    )
    completed = run(["ask", "--stream", "tell me a story", "-c", str(config)], cli_env)
    assert completed.returncode == 1
    assert completed.stdout == "echo: tell\n"  # what arrived, its line ended
    first, second = completed.stderr.splitlines()[:2]
    assert first == (
        "the answer above is incomplete: 10 characters were written before the failure below"
    )
    assert second.startswith("failed: expert 'dropper': the connection")
    assert "broke before the answer was complete" in second
