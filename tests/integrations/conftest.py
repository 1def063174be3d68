"""Fixtures of the LangChain integration tests: a switch over the loopback upstream (one per
module) and a ``SkillSwitchChatModel`` over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skillswitch.integrations.langchain import SkillSwitchChatModel
from skillswitch.switch import Switch
from tests.integrations.switches import build_switch


@pytest.fixture(scope="module")
def switch(upstream: str, cache_root: Path) -> Iterator[Switch]:
    built = build_switch(upstream, cache_root)
    yield built
    SkillSwitchChatModel(switch=built).close()


@pytest.fixture(scope="module")
def model(switch: Switch) -> SkillSwitchChatModel:
    return SkillSwitchChatModel(switch=switch)
