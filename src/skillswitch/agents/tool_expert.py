"""An expert that answers by calling one tool, its arguments read from the request (no model):
a builtin tool with a plain-words reader, or any tool (e.g. an MCP search tool) whose one
string parameter takes the request text."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from skillswitch.agents.base import ExpertReply
from skillswitch.agents.messages import Message, TextDelta, Usage
from skillswitch.exceptions import ExpertError, ExpertRequestError, ToolDeclinedError
from skillswitch.tools.base import Tool, ToolCall, ToolSpec

__all__ = ["ArgumentReader", "ToolExpert", "text_argument"]

# What servers built on the MCP SDK put before a tool's own refusal: the tool is named already.
_SDK_PREFIX = re.compile(r"^Error executing tool [\w.-]+: ")

ArgumentReader = Callable[[str], Mapping[str, Any] | None]
"""The request text -> the tool's arguments, or ``None`` when the request does not say enough."""


def text_argument(spec: ToolSpec) -> ArgumentReader:
    """A reader that passes the request as the tool's one required string parameter."""
    schema = spec.input_schema
    properties = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    strings = [name for name in required if (properties.get(name) or {}).get("type") == "string"]
    if len(required) != 1 or len(strings) != 1:
        raise ValueError(
            f"tool {spec.name} takes {required or 'no required parameters'}; arguments: text "
            "needs exactly one required string parameter"
        )
    parameter = strings[0]
    return lambda request: {parameter: request}


class ToolExpert:
    """Answers a request with one tool call.

    >>> expert = ToolExpert("calc", FunctionTool(calculate, name="calculator"),  # doctest: +SKIP
    ...                     ARGUMENT_READERS["calculator"])
    """

    def __init__(self, name: str, tool: Tool, read: ArgumentReader | None = None) -> None:
        """``read``: the arguments from the request; ``None``: the request as the tool's one
        string parameter (``text_argument``)."""
        self._name = name
        self.tool = tool
        self.read = read

    @property
    def name(self) -> str:
        return self._name

    async def answer(self, messages: Sequence[Message]) -> ExpertReply:
        started = time.perf_counter()
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        resolve = getattr(self.tool, "resolve", None)
        if resolve is not None:  # e.g. an MCP tool known by name until its server is listed
            await resolve()
        tool = self.tool.spec.name
        try:
            read = self.read or text_argument(self.tool.spec)
        except ValueError as exc:
            raise ExpertError(self.name, str(exc)) from None
        arguments = read(request)
        if arguments is None:
            raise ToolDeclinedError(self.name, tool)
        begin = time.perf_counter()
        result = await self.tool.call(arguments)
        raw = json.dumps(dict(arguments), ensure_ascii=False)
        call = ToolCall(
            tool, raw, result.text, result.is_error, 1, (time.perf_counter() - begin) * 1000
        )
        if result.unavailable:
            raise ExpertError(self.name, f"{tool}: {result.text}")
        if result.is_error:  # the tool refused these arguments: the request's problem
            reason = _SDK_PREFIX.sub("", result.text, count=1)
            raise ExpertRequestError(self.name, f"{tool}: {reason}")
        return ExpertReply(
            expert=self.name,
            text=result.text,
            usage=Usage(),
            model=f"tool:{tool}",
            finish_reason="stop",
            latency_ms=(time.perf_counter() - started) * 1000,
            tool_calls=(call,),
        )

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]:
        reply = await self.answer(messages)
        yield TextDelta(reply.text)
        yield reply
