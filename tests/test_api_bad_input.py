"""The Python API as README shows it, given what users get wrong: each mistake is a
``RequestError`` (a ``SkillSwitchError``) that names what was sent and what to send instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillswitch import RequestError, Switch, TestExpert
from skillswitch.agents import TextDelta
from skillswitch.config import parse_config
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def switch(cache_root: Path) -> Iterator[Switch]:
    config = parse_config(
        DEFAULT_SKILLS
        + "\nexperts:\n  - {name: any, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
    )
    built = Switch.from_config(
        config, overrides={"any": TestExpert("any", reply="391")}, cache_dir=cache_root
    )
    yield built
    built.close()


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        ({"role": "user", "content": "hi"}, "one message (a dict), not a list of messages"),
        (None, "must be a text (str) or a list of messages, got NoneType"),
        (17, "must be a text (str) or a list of messages, got int"),
        (b"\xff what is 17 times 23", "not valid UTF-8 (byte 0xff at offset 0)"),
    ],
)
def test_run_sync_names_what_was_sent(switch: Switch, request_: Any, fragment: str) -> None:
    with pytest.raises(RequestError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        switch.run_sync(request_)


def test_utf8_bytes_are_a_text_as_route_takes_them(switch: Switch) -> None:
    text = "what is 17 times 23? — danke".encode()
    assert switch.run_sync(text).text == "391"  # type: ignore[arg-type]
    assert switch.route(b"what is 17 times 23?").skill_names == ("math",)


async def test_stream_names_what_was_sent(switch: Switch) -> None:
    with pytest.raises(RequestError, match="got NoneType"):
        async for _ in switch.stream(None):  # type: ignore[call-overload]
            pass
    text = b"what is 17 times 23?"
    events = [event async for event in switch.stream(text)]  # type: ignore[arg-type]
    assert isinstance(events[0], TextDelta)


async def test_run_sync_inside_a_running_loop_says_to_await_run(switch: Switch) -> None:
    with pytest.raises(RuntimeError, match=r"inside a running event loop.*await switch\.run"):
        switch.run_sync("what is 17 times 23")
    assert (await switch.run("what is 17 times 23")).text == "391"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [(5, "source is a int"), ({"skills": []}, "source is a dict; give a config file's path")],
)
def test_from_config_names_a_source_of_the_wrong_type(source: Any, fragment: str) -> None:
    with pytest.raises(TypeError, match=fragment):
        Switch.from_config(source)


def test_an_override_that_is_not_an_expert_is_named(cache_root: Path) -> None:
    config = parse_config(
        DEFAULT_SKILLS
        + "\nexperts:\n  - {name: any, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
    )
    with pytest.raises(TypeError, match=r"overrides\['any'\] is a str, not an expert"):
        Switch.from_config(config, overrides={"any": "391"}, cache_dir=cache_root)  # type: ignore[dict-item]
