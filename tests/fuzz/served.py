"""What the HTTP fuzz tests share: the config of the server they talk to (healthy experts over
the echo upstream of tests/conftest.py, an API key, a small body limit) and the shape every
error must have."""

from __future__ import annotations

import json

import httpx

KEY = "sk-fuzz-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY = 256 * 1024
REQUEST_TIMEOUT_S = 20.0  # a hang fails the case; a healthy answer takes milliseconds
ERROR_FIELDS = {"message", "type", "param", "code"}

# Healthy experts only: a 502/504 (documented for failing experts) would be a finding here. No
# tool expert: one refuses a request that does not give its arguments (clock, asked "0"), a 502.
EXPERTS = """
experts:
  - {{name: polyglot, base_url: '{u}', model: echo, skills: [translation]}}
  - {{name: scholar, base_url: '{u}', model: echo, skills: [general_knowledge, math]}}
  - {{name: generalist, base_url: '{u}', model: echo}}
dispatch: {{max_experts: 2, retry_attempts: 1, breaker_failures: 1000}}
"""
MODELS = ["skillswitch", "skillswitch/translation", "skillswitch/math", "generalist", "scholar"]


def assert_openai_error(status: int, content: bytes) -> None:
    """An error answer is ``{"error": {message, type, param, code}}`` with a message, and no
    traceback reaches the client."""
    assert status < 500, (status, content[:2000])
    body = json.loads(content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= ERROR_FIELDS, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert b"Traceback" not in content


def post(client: httpx.Client, path: str, content: bytes) -> httpx.Response:
    return client.post(
        path,
        content=content,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT_S,
    )
