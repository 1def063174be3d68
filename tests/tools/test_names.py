from __future__ import annotations

import re

import pytest

from skillswitch.tools.names import ToolNames

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_names_are_openai_valid_unique_and_reversible() -> None:
    names = ToolNames()
    pairs = [
        ("time", "get_current_time"),
        ("fs", "read.file"),
        ("fs", "read_file"),  # sanitises to the same text as read.file
        ("a" * 40, "b" * 40),
        ("git", "git_status"),
    ]
    public = [names.add(server, tool) for server, tool in pairs]
    assert len(set(public)) == len(pairs)
    assert all(OPENAI_NAME.match(name) for name in public)
    assert [names.resolve(name) for name in public] == pairs
    assert public[0] == "time__get_current_time"
    assert names.add("time", "get_current_time") == public[0]  # stable
    with pytest.raises(KeyError, match="unknown tool 'nope'"):
        names.resolve("nope")
