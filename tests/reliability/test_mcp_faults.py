"""MCP upstreams that crash, hang or answer with invalid results, behind tool experts (and a
model expert that calls their tools), through ``skillswitch serve`` and the official ``openai``
client: each request gets one answer or one clear error naming the expert, streamed or not,
alone or many at once; a crashed server is started again for the next call.

The upstream is tests/support/faulty_mcp_server.py (its tools all take ``text`` here)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from skillswitch.config import parse_config
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.mcp_peers import FAULTY_SERVER
from tests.support.servers import serve

TOOL_EXPERTS = {
    "mcp-echo": "echo",
    "mcp-crash": "crash",
    "mcp-hang": "hang",
    "mcp-garbage": "garbage",
    "mcp-invalid": "wrong_shape",
}


def config_text(upstream: str) -> str:
    lines = ["experts:"]
    for name, tool in TOOL_EXPERTS.items():
        extra = {"mcp-hang": ", timeout_s: 0.5", "mcp-crash": ", fallbacks: [mcp-echo]"}
        lines.append(
            f"  - {{name: {name}, kind: tool, tool: faulty__{tool}, arguments: text"
            f"{extra.get(name, '')}}}"
        )
    lines.append(
        f"  - {{name: agent, base_url: '{upstream}', model: tool-directed, tools: ['faulty__*']}}"
    )
    return (
        DEFAULT_SKILLS
        + "\n".join(lines)
        + f"""
tools:
  servers:
    - name: faulty
      command: ['{sys.executable}', '{FAULTY_SERVER}']
      env: {{FAULTY_TEXT_REQUIRED: '1'}}
      call_timeout_s: 1
dispatch: {{max_experts: 1, retry_attempts: 2, retry_base_delay_s: 0.01, deadline_s: 10,
            breaker_failures: 1000}}
"""
    )


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    switch = Switch.from_config(parse_config(config_text(upstream)), cache_dir=cache_root)
    with serve(create_app(switch), lifespan="on") as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as opened:
        yield opened


def outcome(client: openai.OpenAI, model: str, text: str, streamed: bool) -> dict[str, Any]:
    """``answered`` (text, a finish_reason, the trace) or ``error`` (an OpenAI error whose
    message names the expert); anything else fails the test."""
    messages: Any = [{"role": "user", "content": text}]
    failure: openai.APIError | None = None
    try:
        if not streamed:
            completion = client.chat.completions.create(model=model, messages=messages)
            choice = completion.choices[0]
            answer, finish = choice.message.content or "", [choice.finish_reason]
            trace = (completion.model_extra or {})["skillswitch"]
        else:
            chunks = list(
                client.chat.completions.create(model=model, messages=messages, stream=True)
            )
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices]
            trace = (chunks[-1].model_extra or {})["skillswitch"]
    except openai.APIError as exc:  # a status, or an error event in a stream
        failure = exc
    if failure is None:
        assert answer
        assert finish[-1]
        return {"verdict": "answered", "text": answer, "trace": trace}
    status = getattr(failure, "status_code", None)
    assert status in (502, 504, None), failure
    assert f"expert '{model}'" in failure.message
    return {"verdict": "error", "status": status, "message": failure.message}


@pytest.mark.parametrize("streamed", [False, True])
def test_each_faulty_tool_gets_one_answer_or_one_clear_error(
    client: openai.OpenAI, streamed: bool
) -> None:
    crash = outcome(client, "mcp-crash", "bye", streamed)
    echo = outcome(client, "mcp-echo", "still here", streamed)
    hang = outcome(client, "mcp-hang", "wait", streamed)
    garbage = outcome(client, "mcp-garbage", "noise", streamed)
    invalid = outcome(client, "mcp-invalid", "shape", streamed)
    # the crashed tool's expert fails over to its fallback, and the trace says so
    assert crash["verdict"] == "answered"
    assert crash["text"] == "bye"
    failed, answered = crash["trace"]["results"]
    assert (failed["expert"], failed["ok"]) == ("mcp-crash", False)
    assert (answered["expert"], answered["fallback_for"]) == ("mcp-echo", "mcp-crash")
    # the server was started again after the crash
    assert (echo["verdict"], echo["text"]) == ("answered", "still here")
    assert (hang["verdict"], hang["status"]) == ("error", 504)
    assert "no answer within 0.5 s" in hang["message"]
    assert garbage["verdict"] == "error"
    assert "faulty__garbage" in garbage["message"]
    assert invalid["verdict"] == "error"
    assert "faulty__wrong_shape" in invalid["message"]


def test_a_model_expert_sees_its_tools_fail_and_still_answers(client: openai.OpenAI) -> None:
    for tool in ("crash", "hang", "garbage", "wrong_shape"):
        request = f'use the tool [[faulty__{tool} {{"text": "x"}}]]'
        result = outcome(client, "agent", request, streamed=False)
        assert result["verdict"] == "answered", result
        (call,) = result["trace"]["results"][0]["tool_calls"]
        assert (call["tool"], call["is_error"]) == (f"faulty__{tool}", True)
        assert "the tool said:" in result["text"]


@pytest.mark.anyio
async def test_many_requests_at_once_each_get_one_answer_or_one_clear_error(url: str) -> None:
    models = [*TOOL_EXPERTS, "mcp-echo", "mcp-echo"] * 4
    verdicts: dict[str, int] = {"answered": 0, "error": 0}

    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as ac:

        async def one(index: int, model: str) -> None:
            messages: Any = [{"role": "user", "content": f"request {index}"}]
            failure: openai.APIStatusError | None = None
            try:
                completion = await ac.chat.completions.create(model=model, messages=messages)
            except openai.APIStatusError as exc:
                failure = exc
            if failure is None:
                assert completion.choices[0].message.content == f"request {index}"
                verdicts["answered"] += 1
                return
            # a crash takes the calls in flight down with it: each says so, by expert
            assert failure.status_code in (502, 504), failure
            assert f"expert '{model}'" in failure.message
            verdicts["error"] += 1

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for index, model in enumerate(models):
                    group.start_soon(one, index, model)
        assert sum(verdicts.values()) == len(models)
        assert verdicts["answered"] > 0
        # and once the storm is over, the server is back
        after = await ac.chat.completions.create(
            model="mcp-echo", messages=[{"role": "user", "content": "after"}]
        )
        assert after.choices[0].message.content == "after"
