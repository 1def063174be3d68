"""Local experts that call tools: the tool loop on the in-process backend.

``eager`` (tests/support/tiny_models.py) has set weights that make it call a tool whenever it
may, with ``<tool_call>`` as one special token as Qwen2.5 has it; the grammar of the tools picks
what it may write inside the call. ``eager-llama3``, ``eager-mistral`` and ``eager-mistral-v11``
do the same in Llama 3's and Mistral's two formats. So the loop runs for real: calls decoded,
read, run, their results fed back, and a last step without tools that must answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import jsonschema
import pytest
from pydantic import Field

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.client_tools import client_tools, parse_client_tools
from skillswitch.agents.local_model import LocalExpert
from skillswitch.agents.messages import Message, TextDelta
from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError, ExpertError
from skillswitch.inference import GenerationParams, LocalBackend
from skillswitch.tools.base import FunctionTool
from tests.support.configs import DEFAULT_SKILLS
from tests.support.tiny_models import EAGER_OPENINGS, build_eager_tool_caller

pytestmark = pytest.mark.anyio
pytest.importorskip("llguidance")

QUESTION = (Message("user", "Will it rain in Oslo this week?"),)


@pytest.fixture(scope="module")
def backend(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalBackend]:
    root = tmp_path_factory.mktemp("eager")
    folders = {
        "eager": build_eager_tool_caller(root / "eager"),
        "eager-llama3": build_eager_tool_caller(root / "eager-llama3", "llama3"),
        "eager-mistral": build_eager_tool_caller(root / "eager-mistral", "mistral"),
        "eager-mistral-v11": build_eager_tool_caller(root / "eager-mistral-v11", "mistral_v11"),
        "qwen-a": tiny_models["qwen-a"],
    }
    built = LocalBackend.from_folders(folders)
    yield built
    built.close()


class Forecasts:
    """A tool that records how it was called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def weather(
        self, city: Literal["Paris", "Oslo"], days: Annotated[int, Field(ge=1, le=7)]
    ) -> str:
        """The forecast for a city."""
        self.calls.append({"city": city, "days": days})
        return f"{city}: rain on {days} of the next days"


def forecaster(
    backend: LocalBackend, model: str, *, max_new_tokens: int = 100, max_tool_steps: int = 2
) -> tuple[LocalExpert, Forecasts, FunctionTool]:
    """A local expert of ``model`` with the ``weather`` tool, and the record of its calls."""
    forecasts = Forecasts()
    tool = FunctionTool(forecasts.weather, name="weather")
    expert = LocalExpert(
        "forecaster",
        backend,
        model,
        params=GenerationParams(max_new_tokens=max_new_tokens),
        tools=[tool],
        max_tool_steps=max_tool_steps,
    )
    return expert, forecasts, tool


@pytest.mark.parametrize("model", ["eager", "eager-llama3"])
async def test_a_local_model_calls_its_tools_and_sees_the_results(
    backend: LocalBackend, model: str
) -> None:
    expert, forecasts, tool = forecaster(backend, model)
    reply = await expert.answer(QUESTION)
    steps = {call.step for call in reply.tool_calls}
    assert steps == {1, 2}  # a round of calls, their results, and another round
    assert len(forecasts.calls) == len(reply.tool_calls)
    for call, made in zip(reply.tool_calls, forecasts.calls, strict=True):
        assert call.tool == "weather"
        assert not call.is_error
        arguments = json.loads(call.arguments)
        jsonschema.validate(arguments, tool.spec.input_schema)
        assert arguments == made
        assert call.result == f"{made['city']}: rain on {made['days']} of the next days"
    # the last step has no tools: this model then writes its opening over and over, as text,
    # and that is the answer
    assert reply.text.startswith(EAGER_OPENINGS["llama3" if model == "eager-llama3" else "chatml"])
    assert reply.usage.prompt_tokens > 0
    *deltas, last = [part async for part in expert.stream(QUESTION)]
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert len(deltas) > 1  # token by token, not one delta at the end
    assert "".join(delta.text for delta in deltas) == reply.text  # type: ignore[union-attr]
    assert isinstance(last, ExpertReply)
    assert last.text == reply.text
    assert len(last.tool_calls) == len(reply.tool_calls)


async def test_a_stream_its_reader_leaves_stops_the_step_it_was_in(
    backend: LocalBackend,
) -> None:
    """The reader takes three pieces of the last step (tools off: the model writes its opening
    over and over, up to its budget of 500 tokens) and leaves: that generation is cancelled."""
    expert, forecasts, _ = forecaster(backend, "eager", max_new_tokens=500, max_tool_steps=1)
    stream = expert.stream(QUESTION)
    pieces = [await anext(stream) for _ in range(3)]
    after_first_step = backend.scheduler.stats.generated_tokens  # counted as a batch ends
    await stream.aclose()
    assert all(isinstance(piece, TextDelta) for piece in pieces)
    assert forecasts.calls  # the first step ran whole
    with anyio.fail_after(30):  # until the last step's batch has ended (and been counted)
        while backend.scheduler.stats.generated_tokens == after_first_step:
            await anyio.sleep(0.02)
    last_step = backend.scheduler.stats.generated_tokens - after_first_step
    assert last_step < 500  # its budget: run whole, it would have written all of them


@pytest.mark.parametrize("model", ["eager-mistral", "eager-mistral-v11"])
async def test_mistral_s_calls_and_results_go_round_the_loop(
    backend: LocalBackend, model: str
) -> None:
    """Both rounds call (so the first round's calls, with this loop's own ids, and their
    results reached Mistral's template, which takes only ids of 9 letters and digits). The last
    step, without tools, writes nothing but the special tag, which decoding drops: no answer.
    Mistral v0.3's list of calls ends after one (the model prefers its ``]``); the later
    format's calls go on until the budget cuts one, which is dropped."""
    expert, forecasts, tool = forecaster(backend, model)
    with pytest.raises(ExpertError, match=r"empty after \d+ tool call"):
        await expert.answer(QUESTION)
    if model == "eager-mistral":
        assert len(forecasts.calls) == 2
    else:
        assert len(forecasts.calls) >= 4  # several a round
    for made in forecasts.calls:
        jsonschema.validate(made, tool.spec.input_schema)


async def test_the_caller_s_required_tools_come_back_as_calls(backend: LocalBackend) -> None:
    """A local model with no tools of its own is offered the caller's; ``required`` makes it
    call one (whatever the model: this one has random weights), handed back to the caller."""
    schema = {
        "type": "object",
        "properties": {"unit": {"type": "string", "enum": ["C", "F"]}},
        "required": ["unit"],
        "additionalProperties": False,
    }
    offered = parse_client_tools(
        [{"type": "function", "function": {"name": "thermometer", "parameters": schema}}],
        "required",
    )
    expert = LocalExpert("plain", backend, "qwen-a", params=GenerationParams(max_new_tokens=160))
    with client_tools(offered):
        reply = await expert.answer(QUESTION)
    assert reply.finish_reason == "tool_calls"
    assert reply.client_tool_calls
    for call in reply.client_tool_calls:
        assert call.name == "thermometer"
        jsonschema.validate(json.loads(call.arguments), schema)
    assert reply.tool_calls == ()
    without = await expert.answer(QUESTION)  # no tools offered: a plain answer
    assert without.client_tool_calls == ()


def local_tools_config(folder: Path, tools: str) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - name: agent
    kind: local
    model: eager
    tools: {tools}
    max_tool_steps: 3
inference:
  device: cpu
  models:
    - {{name: eager, path: {folder}}}
"""
    )


def test_a_local_expert_s_tools_are_checked_like_any_expert_s(tmp_path: Path) -> None:
    assert parse_config(local_tools_config(tmp_path, "[calculator]")).experts[0].tools == [
        "calculator"
    ]
    with pytest.raises(ConfigError, match=r"experts\[0\]\.tools\[0\]"):
        parse_config(local_tools_config(tmp_path, "[nosuch__tool]"))


async def test_a_switch_hands_a_local_expert_s_call_of_the_caller_s_tool_back(
    tiny_models: dict[str, Path], cache_root: Path
) -> None:
    from skillswitch import Switch

    config = (
        DEFAULT_SKILLS
        + f"""
experts:
  - name: local
    kind: local
    model: qwen-a
    sampling: {{max_tokens: 160}}
inference:
  device: cpu
  models:
    - {{name: qwen-a, path: {tiny_models["qwen-a"]}}}
"""
    )
    thermometer = {
        "type": "function",
        "function": {
            "name": "thermometer",
            "parameters": {
                "type": "object",
                "properties": {"unit": {"type": "string", "enum": ["C", "F"]}},
                "required": ["unit"],
                "additionalProperties": False,
            },
        },
    }
    async with Switch.from_config(parse_config(config), cache_dir=cache_root) as switch:
        answer = await switch.run(
            "How warm is it outside?", tools=[thermometer], tool_choice="required"
        )
    assert answer.tool_calls
    assert {call.name for call in answer.tool_calls} == {"thermometer"}
    for call in answer.tool_calls:
        assert json.loads(call.arguments)["unit"] in ("C", "F")
