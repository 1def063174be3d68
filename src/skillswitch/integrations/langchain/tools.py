"""LangChain tools as skillswitch tools: hand them to a ``ToolCallingExpert`` and its model may
call them in skillswitch's tool loop.

>>> from langchain_core.tools import tool
>>> @tool
... def add(a: int, b: int) -> int:
...     "Add two integers."
...     return a + b
>>> skillswitch_tool(add).spec.input_schema["required"]
['a', 'b']

In a ``Switch``: a configured expert replaced (by name) with a ``ToolCallingExpert`` that has
them, e.g. ``Switch.from_config(path, overrides={"solver": ToolCallingExpert("solver",
base_url, model, tools=skillswitch_tools([add]))})``.

Like every skillswitch tool, a LangChain tool never raises at the model: invalid arguments, a
``ToolException``, any other failure and a timeout come back as ``ToolResult(is_error=True)``
whose text says what went wrong, so that the model can correct itself.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pydantic
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool

from skillswitch.tools.base import Tool, ToolResult, ToolSpec

__all__ = ["LangChainTool", "skillswitch_tool", "skillswitch_tools"]

# What OpenAI-compatible endpoints accept as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


class LangChainTool:
    """A LangChain ``BaseTool`` as a skillswitch ``Tool``.

    The spec is what LangChain itself sends a model for the tool (its name, description and
    the JSON Schema of the arguments a model fills in, ``tool.tool_call_schema``: injected
    arguments left out). A call runs ``tool.ainvoke`` with the arguments as a tool call, so
    that LangChain validates them and reports handled errors (``handle_tool_error``) as an
    error status, which becomes ``is_error``.
    """

    def __init__(
        self, tool: BaseTool, *, name: str | None = None, timeout_s: float | None = 60.0
    ) -> None:
        if not isinstance(tool, BaseTool):
            raise TypeError(
                f"expected a LangChain BaseTool, got {type(tool).__name__}; decorate the "
                "function with langchain_core.tools.tool, or use skillswitch.tools.base."
                "FunctionTool for a plain Python function"
            )
        public = name or tool.name
        if not _NAME.fullmatch(public):
            raise ValueError(
                f"tool name {public!r} is not a valid function name for OpenAI-compatible "
                "models (letters, digits, '_' and '-', at most 64); pass name= to rename it"
            )
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (or None for no limit), got {timeout_s}")
        function = convert_to_openai_tool(tool)["function"]
        self.tool = tool
        self.timeout_s = timeout_s
        self._spec = ToolSpec(
            public,
            function.get("description") or tool.description or public,
            function.get("parameters") or _EMPTY_SCHEMA,
        )

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def __repr__(self) -> str:
        return f"LangChainTool({self.tool.name!r}, name={self._spec.name!r})"

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        name = self._spec.name
        call = {
            "type": "tool_call",
            "id": f"call_{uuid.uuid4().hex[:16]}",
            "name": self.tool.name,
            "args": dict(arguments),
        }
        try:
            with anyio.fail_after(self.timeout_s):
                output = await self.tool.ainvoke(call)
        except TimeoutError:
            return ToolResult(
                f"{name} timed out after {self.timeout_s:g}s", is_error=True, unavailable=True
            )
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            return ToolResult(f"invalid arguments for {name}: {problems}", is_error=True)
        except ToolException as exc:
            return ToolResult(f"{name} failed: {exc}", is_error=True)
        except Exception as exc:  # the model sees the failure and may try again
            return ToolResult(f"{name} failed: {type(exc).__name__}: {exc}", is_error=True)
        if isinstance(output, ToolMessage):
            return ToolResult(_text(output.content), is_error=output.status == "error")
        return ToolResult(_text(output))  # a tool that returns a message of its own making


def skillswitch_tool(
    tool: BaseTool, *, name: str | None = None, timeout_s: float | None = 60.0
) -> Tool:
    """``tool`` as a skillswitch ``Tool`` (``name``: what the model sees, default the tool's
    own; ``timeout_s``: a call that takes longer is an error result; None: no limit)."""
    return LangChainTool(tool, name=name, timeout_s=timeout_s)


def skillswitch_tools(tools: Sequence[BaseTool], *, timeout_s: float | None = 60.0) -> list[Tool]:
    """Several LangChain tools as skillswitch tools, e.g. for ``ToolCallingExpert(tools=...)``."""
    return [skillswitch_tool(tool, timeout_s=timeout_s) for tool in tools]


def _text(content: Any) -> str:
    """A tool's output as the text a model reads: strings as they are, text blocks joined,
    anything else as JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text") for b in content
    ):
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
    try:
        return json.dumps(content, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(content)
