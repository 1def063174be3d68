"""The tool seam: anything a model expert may call (builtin functions now, MCP tools later).

A tool never raises at the model: a bad argument, an unknown name or a failure becomes a
``ToolResult`` with ``is_error=True`` whose text says what went wrong, so the model can recover.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import pydantic

__all__ = ["FunctionTool", "Tool", "ToolCall", "ToolResult", "ToolSpec"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What a model sees of a tool: its name, what it does, and its JSON Schema input."""

    name: str
    description: str
    input_schema: Mapping[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.input_schema),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    text: str
    is_error: bool = False
    unavailable: bool = False
    """The tool did not get to answer: unknown, its server failed or could not be reached, it
    timed out, or its result was invalid. An error the tool returned itself (it ran and refused
    the arguments: a division by zero, an unknown unit) is ``is_error`` alone."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call a model made during an answer, and what came back."""

    tool: str
    arguments: str
    result: str
    is_error: bool
    step: int
    duration_ms: float = 0.0


@runtime_checkable
class Tool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult: ...


@dataclass
class FunctionTool:
    """A Python function (sync or async) as a tool; its typed signature is the input schema
    and arguments are validated against it before the call.

    >>> def add(a: int, b: int) -> int:
    ...     "Add two integers."
    ...     return a + b
    >>> FunctionTool(add).spec.input_schema["required"]
    ['a', 'b']
    """

    function: Callable[..., Any]
    name: str | None = None
    description: str | None = None
    timeout_s: float = 30.0
    _model: type[pydantic.BaseModel] = field(init=False, repr=False)
    _spec: ToolSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:  # annotations written as text (``from __future__ import annotations``) resolved
            signature = inspect.signature(self.function, eval_str=True)
        except NameError:  # a name only imported for type checkers: left as text
            signature = inspect.signature(self.function)
        fields: dict[str, Any] = {}
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"tool {self.function.__name__}: *args/**kwargs have no schema")
            annotation = (
                Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
            )
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, default)
        self._model = pydantic.create_model(
            f"{self.function.__name__}_input",
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        for value in schema.get("properties", {}).values():
            value.pop("title", None)
        self._spec = ToolSpec(
            self.name or self.function.__name__,
            self.description or inspect.getdoc(self.function) or self.function.__name__,
            schema,
        )

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        try:
            parsed = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            return ToolResult(f"invalid arguments for {self._spec.name}: {problems}", True)
        values = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        try:
            with anyio.fail_after(self.timeout_s):
                if inspect.iscoroutinefunction(self.function):
                    result = await self.function(**values)
                else:
                    result = await anyio.to_thread.run_sync(lambda: self.function(**values))
        except TimeoutError:
            return ToolResult(
                f"{self._spec.name} timed out after {self.timeout_s:g}s", True, unavailable=True
            )
        except Exception as exc:  # the model sees the failure and may try again
            return ToolResult(f"{self._spec.name} failed: {type(exc).__name__}: {exc}", True)
        return ToolResult(result if isinstance(result, str) else _json(result))


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
