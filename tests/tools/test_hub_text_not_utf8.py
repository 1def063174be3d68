"""Arguments holding text that is not UTF-8 (a lone surrogate: an undecodable byte of a command
line, or a ``\\ud800`` escape in JSON) are refused before they are sent: sending them ended the
stdio server's session ("connection lost", a restart) instead of answering the call."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from mcp import StdioServerParameters

from skillswitch.tools.connection import ServerSettings
from skillswitch.tools.hub import HubServer, ToolHub
from tests.support.cli import run


@pytest.fixture
def hub() -> Iterator[ToolHub]:
    builtin = StdioServerParameters(
        command=sys.executable, args=["-m", "skillswitch.tools.builtin_server"]
    )
    with ToolHub([HubServer(ServerSettings("builtin", builtin))]) as started:
        yield started


@pytest.mark.parametrize(
    ("arguments", "where"),
    [
        ({"expression": "1 + \ud800"}, "expression: text that is not valid UTF-8 (at character 4)"),
        ({"expression": "1", "\udcff": 2}, "(arguments): text that is not valid UTF-8"),
    ],
)
def test_lone_surrogates_are_refused_and_the_session_lives_on(
    hub: ToolHub, arguments: dict[str, object], where: str
) -> None:
    refused = hub.call_sync("builtin__calculator", arguments)
    assert refused.is_error
    assert refused.text.startswith(f"invalid arguments for builtin__calculator: {where}")
    after = hub.call_sync("builtin__calculator", {"expression": "17 * 23"})
    assert (after.text, after.is_error) == ("391", False)
    assert hub.health_sync()[0]["state"] == "ready"


def test_the_cli_refuses_args_that_are_not_utf8(cli_env: dict[str, str]) -> None:
    undecodable = b'{"expression": "\xff"}'.decode("utf-8", "surrogateescape")
    completed = run(["tools", "call", "builtin__calculator", "--args", undecodable], cli_env)
    assert completed.returncode == 2
    assert "--args holds bytes that are not valid UTF-8 (at character 16)" in completed.stderr


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_json_cannot_carry_are_refused(hub: ToolHub, value: float) -> None:
    """Python's JSON reads NaN and Infinity (`tools call --args '{"value": NaN}'`); sent on,
    the server received null and answered with its validator's dump."""
    refused = hub.call_sync("builtin__units", {"value": value, "from_unit": "km", "to_unit": "m"})
    assert refused.is_error
    assert refused.text == (
        f"invalid arguments for builtin__units: value: {value} is not a finite number (JSON has "
        "no NaN or Infinity); send a number"
    )
