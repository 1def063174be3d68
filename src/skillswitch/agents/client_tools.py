"""Tools of the caller: functions an OpenAI-style caller offers with its request.

skillswitch never runs them. An expert that can call tools (the OpenAI-compatible chat experts)
is offered them beside its own; when it asks for one, the answer hands the call back to the
caller (``Answer.tool_calls``, ``finish_reason: "tool_calls"`` on HTTP), who runs it and sends
the result in a ``tool`` message of its next request, exactly as with OpenAI's API.

The tools of one request travel in a context variable, set by ``Switch.run``/``stream`` around
the dispatch, so that experts need no new parameter (tasks inherit it from the request's task).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from skillswitch.exceptions import RequestError
from skillswitch.tools.base import ToolSpec

__all__ = [
    "ClientToolCall",
    "ClientTools",
    "ToolChoice",
    "client_tools",
    "enter_client_tools",
    "leave_client_tools",
    "offered_client_tools",
    "parse_client_tools",
]

ToolChoiceMode = Literal["none", "auto", "required", "function"]
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ClientToolCall:
    """A call of a caller's tool that an expert asked for: the caller runs it."""

    id: str
    name: str
    arguments: str
    """JSON text, as the model wrote it (OpenAI's shape: the caller parses it)."""

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """OpenAI's ``tool_choice``: ``none``, ``auto``, ``required``, or one named function."""

    mode: ToolChoiceMode = "auto"
    function: str | None = None

    @property
    def requires_call(self) -> bool:
        return self.mode in ("required", "function")

    def to_openai(self) -> str | dict[str, Any]:
        if self.mode == "function":
            return {"type": "function", "function": {"name": self.function}}
        return self.mode


@dataclass(frozen=True, slots=True)
class ClientTools:
    """The caller's tools of one request and its ``tool_choice``."""

    specs: tuple[ToolSpec, ...]
    choice: ToolChoice = ToolChoice()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    def to_openai(self) -> list[dict[str, Any]]:
        return [spec.to_openai() for spec in self.specs]


def parse_client_tools(
    tools: Sequence[Mapping[str, Any] | ToolSpec] | None, tool_choice: Any = None
) -> ClientTools | None:
    """The caller's ``tools`` (OpenAI's shape, or ``ToolSpec``) and ``tool_choice``, checked;
    None when no tools are offered and none is asked for.

    >>> tools = [{"type": "function", "function": {"name": "get_weather"}}]
    >>> parse_client_tools(tools, "required").choice.mode
    'required'
    """
    specs = tuple(_spec(index, tool) for index, tool in enumerate(tools or ()))
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RequestError(f"tools names {', '.join(twice)} more than once; give each tool once")
    choice = _choice(tool_choice, names)
    if not specs:
        if choice.requires_call:
            raise RequestError(
                f"tool_choice is {tool_choice!r} but no tools are given; send tools, or "
                "leave tool_choice out"
            )
        return None
    return ClientTools(specs, choice)


def _spec(index: int, tool: Mapping[str, Any] | ToolSpec) -> ToolSpec:
    if isinstance(tool, ToolSpec):
        _check_name(f"tools[{index}]", tool.name)
        return tool
    where = f"tools[{index}]"
    if not isinstance(tool, Mapping):
        raise RequestError(
            f"{where} must be an object like {{'type': 'function', 'function': {{...}}}}"
        )
    if tool.get("type", "function") != "function":
        raise RequestError(
            f"{where}.type is {tool.get('type')!r}; only 'function' tools can be offered"
        )
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise RequestError(f"{where}.function must be an object with a name")
    name = function.get("name")
    _check_name(f"{where}.function.name", name)
    description = function.get("description", "")
    if not isinstance(description, str):
        raise RequestError(f"{where}.function.description must be text")
    parameters = function.get("parameters", _EMPTY_PARAMETERS)
    if not isinstance(parameters, Mapping):
        raise RequestError(f"{where}.function.parameters must be a JSON Schema object")
    return ToolSpec(str(name), description, dict(parameters))


def _check_name(where: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError(f"{where} is {name!r}; a tool name is 1-64 letters, digits, '_' or '-'")


def _choice(value: Any, names: Sequence[str]) -> ToolChoice:
    if value is None:
        return ToolChoice("auto" if names else "none")
    if isinstance(value, ToolChoice):
        choice = value
    elif value in ("none", "auto", "required"):
        choice = ToolChoice(value)
    elif (
        isinstance(value, Mapping)
        and value.get("type") == "function"
        and isinstance(value.get("function"), Mapping)
    ):
        choice = ToolChoice("function", value["function"].get("name"))
    else:
        raise RequestError(
            f"tool_choice is {value!r}; use 'none', 'auto', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    if choice.mode == "function" and choice.function not in names:
        offered = ", ".join(names) or "no tools"
        raise RequestError(
            f"tool_choice names the function {choice.function!r}, which is not among the "
            f"tools ({offered})"
        )
    return choice


_OFFERED: contextvars.ContextVar[ClientTools | None] = contextvars.ContextVar(
    "skillswitch_client_tools", default=None
)


def offered_client_tools() -> ClientTools | None:
    """The caller's tools of the request being answered, if it offered any."""
    return _OFFERED.get()


@contextlib.contextmanager
def client_tools(tools: ClientTools | None) -> Iterator[None]:
    """Offer ``tools`` to the experts called inside the block."""
    token = enter_client_tools(tools)
    try:
        yield
    finally:
        leave_client_tools(token)


def enter_client_tools(tools: ClientTools | None) -> contextvars.Token[ClientTools | None]:
    """``client_tools`` for async generators, where a ``with`` block would span yields."""
    return _OFFERED.set(tools)


def leave_client_tools(token: contextvars.Token[ClientTools | None]) -> None:
    with contextlib.suppress(ValueError):  # from another task's context, which never had it
        _OFFERED.reset(token)
