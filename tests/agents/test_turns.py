from __future__ import annotations

import pytest

from skillswitch.agents import parse_messages
from skillswitch.agents.messages import Message
from skillswitch.agents.turns import TurnMemory, TurnRecord


def test_remembers_turns_by_history_and_forgets_the_oldest() -> None:
    memory = TurnMemory(capacity=2)
    record = TurnRecord(("math",), ("calculator",))
    for n in range(3):
        memory.remember(parse_messages(f"q{n}"), f"a{n}", record)
    assert len(memory) == 2

    def follow(n: int) -> list[Message]:
        return [Message("user", f"q{n}"), Message("assistant", f"a{n}"), Message("user", "more")]

    assert memory.previous(follow(0)) is None  # evicted
    assert memory.previous(follow(2)) == record
    assert memory.previous(parse_messages("q2")) is None  # no history
    with pytest.raises(ValueError, match="capacity"):
        TurnMemory(0)


def test_a_reply_holding_a_lone_surrogate_is_remembered() -> None:
    """Switch.run raised UnicodeEncodeError here when an expert's reply held one."""
    memory = TurnMemory()
    record = TurnRecord(("math",), ("calculator",))
    memory.remember(parse_messages("q"), "broken \ud800 text", record)
    following = [Message("user", "q"), Message("assistant", "broken \ud800 text")]
    assert memory.previous([*following, Message("user", "more")]) == record
