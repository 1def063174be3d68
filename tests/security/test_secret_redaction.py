"""Secrets never leave: canary keys (an expert's API key, the server's own key) are injected,
an upstream that quotes the key it was sent in its error page is called through every surface
(Python, HTTP streamed and not, the CLI's server), and every captured log line, error body and
trace is grepped for the canaries."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest

from skillswitch.config import parse_config
from skillswitch.exceptions import ExpertsFailedError
from skillswitch.redaction import REDACTED, redact, register_secret
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.cli_server import running_server
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve

EXPERT_CANARY = f"sk-canary-expert-{uuid.uuid4().hex}"
SERVER_CANARY = f"sk-canary-server-{uuid.uuid4().hex}"
ASK = {"model": "leaky", "messages": [{"role": "user", "content": "what is 2 + 2"}]}


def config_text(upstream: str) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - {{name: leaky, base_url: '{upstream}', model: auth-echo, api_key_env: CANARY_EXPERT_KEY}}
dispatch: {{max_experts: 1, retry_attempts: 1}}
"""
    )


def assert_clean(text: str) -> None:
    assert EXPERT_CANARY not in text
    assert SERVER_CANARY not in text


def test_an_upstream_quoting_the_key_leaks_it_nowhere(
    upstream: str,
    cache_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CANARY_EXPERT_KEY", EXPERT_CANARY)
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' and uvicorn's included
    switch = Switch.from_config(parse_config(config_text(upstream)), cache_dir=cache_root)
    bodies: list[str] = []
    with serve(create_app(switch, api_key=SERVER_CANARY), lifespan="on") as base:
        auth = {"Authorization": f"Bearer {SERVER_CANARY}"}
        url = f"{base}/v1/chat/completions"
        whole = httpx.post(url, json=ASK, headers=auth, timeout=30)
        streamed = httpx.post(url, json={**ASK, "stream": True}, headers=auth, timeout=30)
        wrong = httpx.post(url, json=ASK, headers={"Authorization": "Bearer nope"}, timeout=30)
        bodies += [whole.text, streamed.text, wrong.text]
    assert (whole.status_code, streamed.status_code, wrong.status_code) == (502, 502, 401)
    error = whole.json()["error"]
    assert "invalid key: Bearer [redacted]" in error["message"]  # the upstream really quoted it
    (result,) = error["skillswitch"]["results"]
    assert "[redacted]" in result["error"]

    with pytest.raises(ExpertsFailedError) as raised:  # the Python API's exception and trace
        switch.run_sync("what is 2 + 2", expert="leaky")
    bodies += [str(raised.value), str(raised.value.exceptions[0])]
    bodies.append(json.dumps(raised.value.trace.to_dict()))

    logging.getLogger("skillswitch.test").warning("a careless line: %s", EXPERT_CANARY)
    lines = [record.getMessage() for record in caplog.records]
    assert f"a careless line: {REDACTED}" in lines
    for text in [*bodies, *lines, caplog.text]:
        assert_clean(text)


def test_the_cli_server_log_holds_no_canary(
    upstream: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_text(upstream), encoding="utf-8")
    env = {**cli_env, "CANARY_EXPERT_KEY": EXPERT_CANARY, "CANARY_SERVER_KEY": SERVER_CANARY}
    args = ["--api-key-env", "CANARY_SERVER_KEY"]
    with running_server(config, env, tmp_path / "server.log", args) as server:
        auth = {"Authorization": f"Bearer {SERVER_CANARY}"}
        url = f"{server.base}/v1/chat/completions"
        answered = httpx.post(url, json=ASK, headers=auth, timeout=30)
        assert answered.status_code == 502
        assert_clean(answered.text)
        assert server.stop() == 0
    stderr = server.log.read_text(encoding="utf-8")
    # The failure is logged with the upstream's words, which quoted the key: redacted.
    assert "request for model 'leaky' failed with 502" in stderr
    assert f"invalid key: Bearer {REDACTED}" in stderr
    assert_clean(stderr)


def test_short_values_are_not_secrets_and_longest_secrets_go_first() -> None:
    register_secret("abc")  # too short to be a key: redacting it would hide ordinary words
    assert redact("abc") == "abc"
    register_secret("sk-outer-secret-0001")
    register_secret("outer-secret")
    assert redact("x sk-outer-secret-0001 y outer-secret") == f"x {REDACTED} y {REDACTED}"
