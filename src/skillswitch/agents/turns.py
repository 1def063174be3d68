"""Multi-turn memory: a follow-up keeps the experts of the previous turn unless its skills change.

After each answer the conversation so far (with the answer appended) is fingerprinted; when a
later request's history matches a fingerprint, the experts chosen then are reused while the new
message's best skill is one of that turn's skills. A turn that asked the caller to run its
tools is resumed by the request that brings their results, and goes back to the expert that
asked. Bounded (LRU), in memory, per ``Switch``.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message

__all__ = ["TurnMemory", "TurnRecord"]


@dataclass(frozen=True, slots=True)
class TurnRecord:
    skills: tuple[str, ...]
    experts: tuple[str, ...]


def _fingerprint(messages: Sequence[Message]) -> str:
    payload = json.dumps(
        [
            [m.role, m.content, [c.to_dict() for c in m.tool_calls], m.tool_call_id]
            for m in messages
        ],
        ensure_ascii=False,
    )
    # surrogatepass: an expert's reply may hold a lone surrogate; the fingerprint must not fail.
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


class TurnMemory:
    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._records: OrderedDict[str, TurnRecord] = OrderedDict()

    def remember(
        self,
        messages: Sequence[Message],
        answer: str,
        record: TurnRecord,
        tool_calls: Sequence[ClientToolCall] = (),
    ) -> None:
        key = _fingerprint([*messages, Message("assistant", answer, tuple(tool_calls))])
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def previous(self, messages: Sequence[Message]) -> TurnRecord | None:
        """The record of the turn this request follows (its messages minus the last user
        message, or minus the tool results that end it; system messages included), if it was
        answered here."""
        end = len(messages) - 1
        while end > 0 and messages[end].role == "tool":
            end -= 1
        if messages[-1].role == "tool":
            end += 1  # keep the assistant message that asked for the tools
        if end < 2:
            return None
        key = _fingerprint(messages[:end])
        found = self._records.get(key)
        if found is not None:
            self._records.move_to_end(key)
        return found

    def __len__(self) -> int:
        return len(self._records)
