"""The expert seam: anything that answers a conversation, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message, TextDelta, Usage
from skillswitch.tools.base import ToolCall

__all__ = ["Expert", "ExpertReply"]


@dataclass(frozen=True, slots=True)
class ExpertReply:
    """One expert's complete answer."""

    expert: str
    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    latency_ms: float = 0.0
    tool_calls: tuple[ToolCall, ...] = ()
    """The tools the expert called on the way to this answer, in order."""
    client_tool_calls: tuple[ClientToolCall, ...] = ()
    """Calls of the caller's tools the expert asks for (the caller runs them); the text may
    then be empty."""


@runtime_checkable
class Expert(Protocol):
    """Answers conversations. ``stream`` yields text deltas and ends with the full reply.

    An expert that can call the caller's tools (``offered_client_tools()``) says so with a
    class attribute ``calls_client_tools = True``; the others answer in text.
    """

    @property
    def name(self) -> str: ...

    async def answer(self, messages: Sequence[Message]) -> ExpertReply: ...

    def stream(self, messages: Sequence[Message]) -> AsyncIterator[TextDelta | ExpertReply]: ...
