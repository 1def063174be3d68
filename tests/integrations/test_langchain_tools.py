"""LangChain tools as skillswitch tools: the spec a model sees, calls and their errors (never
raised at the model), and a real tool-calling loop against the loopback upstream, in which the
upstream's ``tool-directed`` model calls the tool the user names as ``[[name {json}]]`` and
answers ``offered [...]; the tool said: <result>``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool, ToolException, tool

from skillswitch.agents.messages import Message
from skillswitch.agents.tool_calling import ToolCallingExpert
from skillswitch.config import parse_config
from skillswitch.integrations.langchain import (
    LangChainTool,
    SkillSwitchChatModel,
    skillswitch_tool,
    skillswitch_tools,
)
from skillswitch.switch import Switch
from skillswitch.tools.base import Tool, ToolResult
from tests.support.configs import DEFAULT_SKILLS


class Toolbox:
    """LangChain tools that record their calls, so a test sees that they really ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

        @tool
        def add(a: int, b: int) -> int:
            """Add two integers."""
            self.calls.append(("add", {"a": a, "b": b}))
            return a + b

        @tool
        async def shout(text: str) -> str:
            """Say the text in capitals."""
            self.calls.append(("shout", {"text": text}))
            return text.upper()

        @tool
        def divide(a: float, b: float) -> float:
            """Divide a by b."""
            if b == 0:
                raise ToolException("cannot divide by zero")
            return a / b

        self.add, self.shout, self.divide = add, shout, divide


@pytest.fixture
def toolbox() -> Toolbox:
    return Toolbox()


def test_the_spec_is_what_langchain_would_send_a_model(toolbox: Toolbox) -> None:
    spec = skillswitch_tool(toolbox.add).spec
    assert spec.name == "add"
    assert spec.description == "Add two integers."
    assert spec.input_schema["type"] == "object"
    assert spec.input_schema["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert spec.input_schema["required"] == ["a", "b"]
    assert spec.to_openai()["function"]["name"] == "add"
    assert isinstance(skillswitch_tool(toolbox.add), Tool)


def test_injected_arguments_are_not_shown_to_the_model() -> None:
    @tool
    def lookup(key: str, user_id: Annotated[str, InjectedToolArg]) -> str:
        """Look a key up for a user."""
        return f"{user_id}:{key}"

    assert list(skillswitch_tool(lookup).spec.input_schema["properties"]) == ["key"]


@pytest.mark.anyio
async def test_a_call_runs_the_tool(toolbox: Toolbox) -> None:
    assert await skillswitch_tool(toolbox.add).call({"a": 2, "b": 3}) == ToolResult("5")
    assert await skillswitch_tool(toolbox.shout).call({"text": "hi"}) == ToolResult("HI")
    assert toolbox.calls == [("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"})]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"a": "two", "b": 3}, "invalid arguments for add: a: Input should be a valid integer"),
        ({"a": 1}, "invalid arguments for add: b: Field required"),
    ],
    ids=["wrong-type", "missing"],
)
@pytest.mark.anyio
async def test_invalid_arguments_are_an_error_result(
    toolbox: Toolbox, arguments: dict[str, Any], message: str
) -> None:
    result = await skillswitch_tool(toolbox.add).call(arguments)
    assert result.is_error
    assert result.text.startswith(message)
    assert toolbox.calls == []


@pytest.mark.anyio
async def test_tool_failures_are_error_results(toolbox: Toolbox) -> None:
    failed = await skillswitch_tool(toolbox.divide).call({"a": 1, "b": 0})
    assert failed == ToolResult("divide failed: cannot divide by zero", is_error=True)

    def explode(text: str) -> str:
        raise RuntimeError(f"no {text}")

    raw = StructuredTool.from_function(explode, description="Always fails.")
    assert await skillswitch_tool(raw).call({"text": "luck"}) == ToolResult(
        "explode failed: RuntimeError: no luck", is_error=True
    )
    # A tool that handles its own errors still reports them as errors.
    handled = StructuredTool.from_function(
        toolbox.divide.func, name="divide", description="Divide.", handle_tool_error=True
    )
    result = await skillswitch_tool(handled).call({"a": 1, "b": 0})
    assert result == ToolResult("cannot divide by zero", is_error=True)


@pytest.mark.anyio
async def test_a_slow_tool_times_out_as_an_error_result() -> None:
    @tool
    async def nap(seconds: float) -> str:
        """Sleep."""
        await anyio.sleep(seconds)
        return "awake"

    result = await skillswitch_tool(nap, timeout_s=0.05).call({"seconds": 10})
    assert result == ToolResult("nap timed out after 0.05s", is_error=True, unavailable=True)


def test_what_cannot_be_a_tool_is_refused_clearly(toolbox: Toolbox) -> None:
    def plain(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="expected a LangChain BaseTool, got function; decorate"):
        skillswitch_tool(plain)  # type: ignore[arg-type]
    spaced = StructuredTool.from_function(plain, name="my tool", description="Spaced.")
    with pytest.raises(ValueError, match="tool name 'my tool' is not a valid function name"):
        skillswitch_tool(spaced)
    assert skillswitch_tool(spaced, name="my_tool").spec.name == "my_tool"
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        skillswitch_tool(toolbox.add, timeout_s=0)


# --- in a real tool-calling loop ------------------------------------------------------------

SOLVER = """
experts:
  - {{name: solver, base_url: '{u}', model: tool-directed, skills: [math]}}
  - {{name: generalist, base_url: '{u}', model: echo}}
dispatch: {{max_experts: 1}}
"""
ADD_2_3 = 'what is 2 + 3? [[add {"a": 2, "b": 3}]]'


def solver(upstream: str, tools: list[BaseTool]) -> ToolCallingExpert:
    """An expert whose model may call ``tools``, in skillswitch's tool loop."""
    return ToolCallingExpert("solver", upstream, "tool-directed", tools=skillswitch_tools(tools))


@pytest.mark.anyio
async def test_a_tool_calling_expert_runs_langchain_tools(upstream: str, toolbox: Toolbox) -> None:
    async with solver(upstream, [toolbox.add, toolbox.shout]) as expert:
        reply = await expert.answer([Message("user", ADD_2_3)])
    assert reply.text == "offered ['add', 'shout']; the tool said: 5"
    assert toolbox.calls == [("add", {"a": 2, "b": 3})]
    (call,) = reply.tool_calls
    assert (call.tool, json.loads(call.arguments), call.result, call.is_error) == (
        "add",
        {"a": 2, "b": 3},
        "5",
        False,
    )


@pytest.fixture
def tool_switch(upstream: str, cache_root: Path, toolbox: Toolbox) -> Iterator[Switch]:
    """The config's ``solver`` replaced (by name) with one that has the LangChain tools."""
    switch = Switch.from_config(
        parse_config(DEFAULT_SKILLS + SOLVER.format(u=upstream)),
        overrides={"solver": solver(upstream, [toolbox.add, toolbox.shout, toolbox.divide])},
        cache_dir=cache_root,
    )
    yield switch
    SkillSwitchChatModel(switch=switch).close()


def test_langchain_tools_in_a_switch_show_in_the_trace(
    tool_switch: Switch, toolbox: Toolbox
) -> None:
    model = SkillSwitchChatModel(switch=tool_switch)
    reply = model.invoke(ADD_2_3)
    assert reply.content == "offered ['add', 'divide', 'shout']; the tool said: 5"
    trace = reply.response_metadata["skillswitch"]
    assert "math" in [s["skill"] for s in trace["routing"]["skills"]]  # solver's skill
    assert [e["expert"] for e in trace["experts"]] == ["solver"]
    (call,) = trace["results"][0]["tool_calls"]
    assert call["tool"] == "add"
    assert json.loads(call["arguments"]) == {"a": 2, "b": 3}
    assert (call["result"], call["is_error"], call["step"]) == ("5", False, 1)
    assert toolbox.calls == [("add", {"a": 2, "b": 3})]


def test_a_failing_langchain_tool_is_an_error_the_model_reads(
    tool_switch: Switch, toolbox: Toolbox
) -> None:
    model = SkillSwitchChatModel(switch=tool_switch, expert="solver")
    chunks = list(model.stream('divide 1 by 0 [[divide {"a": 1, "b": 0}]]'))
    text = "".join(str(chunk.content) for chunk in chunks)
    assert text.endswith("the tool said: divide failed: cannot divide by zero")
    (call,) = chunks[-1].response_metadata["skillswitch"]["results"][0]["tool_calls"]
    assert (call["tool"], call["is_error"]) == ("divide", True)
    invalid = model.invoke('[[add {"a": "two", "b": 3}]]')
    (call,) = invalid.response_metadata["skillswitch"]["results"][0]["tool_calls"]
    assert call["is_error"]
    assert call["result"].startswith("invalid arguments for add: a: Input should be a valid")
    assert toolbox.calls == []


@pytest.mark.anyio
async def test_an_async_langchain_tool_runs_in_the_switchs_loop(
    tool_switch: Switch, toolbox: Toolbox
) -> None:
    model = SkillSwitchChatModel(switch=tool_switch, expert="solver")
    reply = await model.ainvoke('[[shout {"text": "hello"}]]')
    assert str(reply.content).endswith("the tool said: HELLO")
    assert toolbox.calls == [("shout", {"text": "hello"})]


def test_langchain_tool_repr_names_the_tool(toolbox: Toolbox) -> None:
    assert repr(LangChainTool(toolbox.add, name="plus")) == "LangChainTool('add', name='plus')"
