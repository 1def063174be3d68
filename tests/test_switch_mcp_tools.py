"""Switch end to end with MCP tools: a model expert on the loopback upstream is handed the
configured MCP servers' tools (real third-party servers) and skillswitch runs the calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.mcp_peers import peer

pytestmark = pytest.mark.anyio


def switch_config(upstream: str, memory_file: Path, allow: str = "[]") -> Any:
    skills = DEFAULT_SKILLS.replace(
        "  - name: brainstorming\n",
        f"  - name: brainstorming\n    allow_destructive: {allow}\n",
    )
    return parse_config(
        skills
        + f"""
experts:
  - name: agent
    base_url: '{upstream}'
    model: tool-directed
    tools: [calculator, 'time__*', 'memory__*']
tools:
  servers:
    - name: time
      command: ['{peer("mcp-server-time")}', --local-timezone, UTC]
      skills: [datetime]
    - name: memory
      command: ['{peer("mcp-server-memory")}']
      env: {{MEMORY_FILE_PATH: '{memory_file}'}}
"""
    )


async def test_a_model_expert_calls_mcp_tools_of_its_request_skill(
    upstream: str, cache_root: Path, tmp_path: Path
) -> None:
    async with Switch.from_config(
        switch_config(upstream, tmp_path / "memory.jsonl"), cache_dir=cache_root
    ) as switch:
        request = (
            "what time is it in Tokyo right now? "
            '[[time__get_current_time {"timezone": "Asia/Tokyo"}]]'
        )
        answer = await switch.run(request)
        assert answer.trace.decision.skill_names[0] == "datetime"
        assert "+09:00" in answer.text
        offered = answer.text.split("; the tool said")[0]
        assert "time__get_current_time" in offered
        assert "calculator" in offered
        assert "memory__delete_entities" not in offered  # destructive, not allowed
        (result,) = answer.trace.to_dict()["results"]
        (call,) = result["tool_calls"]
        assert call["tool"] == "time__get_current_time"
        assert not call["is_error"]
        assert json.loads(call["result"])["timezone"] == "Asia/Tokyo"

        # the time server is reserved for datetime requests
        other = await switch.run(
            'give me ten name ideas for a coffee shop [[time__get_current_time {"timezone": "UTC"}]]'
        )
        assert "time__get_current_time" not in other.text.split("; the tool said")[0]
        assert "unknown tool 'time__get_current_time'" in other.text


async def test_a_skill_may_allow_destructive_tools(
    upstream: str, cache_root: Path, tmp_path: Path
) -> None:
    config = switch_config(upstream, tmp_path / "memory.jsonl", allow="['memory__delete_*']")
    async with Switch.from_config(config, cache_dir=cache_root) as switch:
        answer = await switch.run(
            'give me ten name ideas for a coffee shop [[memory__delete_entities {"entityNames": []}]]'
        )
        assert "memory__delete_entities" in answer.text.split("; the tool said")[0]
        assert answer.trace.to_dict()["results"][0]["tool_calls"][0]["is_error"] is False


def test_config_errors_name_the_server_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            DEFAULT_SKILLS
            + """
tools:
  servers:
    - {name: web, url: 'http://127.0.0.1:9/mcp', env: {A: b}}
    - {name: a__b, command: [x]}
    - {name: both, command: [x], url: 'http://127.0.0.1:9/mcp'}
"""
        )
    text = str(caught.value)
    assert "tools.servers[0]: 'env' and 'cwd' apply to 'command' (stdio) servers only" in text
    assert "tools.servers[1]: name 'a__b' contains '__'" in text
    assert "use e.g. 'a_b'" in text
    assert "tools.servers[2]: set exactly one of 'command' (stdio) or 'url'" in text


def test_config_errors_name_the_tool_reference_and_the_fix(upstream: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            DEFAULT_SKILLS.replace(
                "  - name: math\n", "  - name: math\n    allow_destructive: ['fs__write_file']\n"
            )
            + f"""
experts:
  - {{name: a, base_url: '{upstream}', model: m, tools: [calculater, 'tme__*', 'time__']}}
tools:
  servers:
    - {{name: time, command: [mcp-server-time]}}
    - {{name: time, command: [mcp-server-time]}}
"""
        )
    text = str(caught.value)
    assert "experts[0].tools[0]: unknown tool 'calculater'; did you mean 'calculator'?" in text
    assert "'tme__*' names MCP server 'tme', which is not configured; did you mean 'time'?" in text
    assert "'time__' names no tool; write time__<tool> or time__* for all" in text
    assert "tools.servers[1].name: 'time' is already declared at tools.servers[0]" in text
    assert "skills[0].allow_destructive[0]: 'fs__write_file' names no configured MCP server" in text


def test_the_tools_cli_lists_and_calls_upstream_tools(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    from tests.support.cli import run

    config = tmp_path / "config.yaml"
    config.write_text(
        DEFAULT_SKILLS
        + f"""
tools:
  servers:
    - {{name: time, command: ['{peer("mcp-server-time")}', --local-timezone, UTC]}}
    - {{name: gone, command: [/bin/sh, -c, 'echo cannot open the database >&2']}}
"""
    )
    listed = run(["tools", "list", "--json", "--config", str(config)], cli_env)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert {t["name"] for t in report["tools"]} == {"time__get_current_time", "time__convert_time"}
    gone = next(s for s in report["servers"] if s["server"] == "gone")
    assert gone["state"] == "failed"
    assert "cannot open the database" in gone["last_error"]
    called = run(
        [
            *("tools", "call", "time__get_current_time"),
            *("--args", '{"timezone": "Asia/Tokyo"}', "--config", str(config)),
        ],
        cli_env,
    )
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["timezone"] == "Asia/Tokyo"
    wrong = run(
        ["tools", "call", "time__get_current_time", "--args", "[1]", "-c", str(config)], cli_env
    )
    assert wrong.returncode == 2
    assert "--args must be a JSON object" in wrong.stderr
    failed = run(["tools", "call", "time__nope", "-c", str(config)], cli_env)
    assert failed.returncode == 1
    assert "unknown tool 'time__nope'" in failed.stderr
