"""Plain-words readers for the builtin tools, and the tool expert: a request answered by one
tool call, here through the builtin tools' own MCP server (in-process and stdio)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest
from mcp import StdioServerParameters

from skillswitch.agents import parse_messages
from skillswitch.agents.tool_expert import ToolExpert, text_argument
from skillswitch.exceptions import ExpertError
from skillswitch.tools.base import FunctionTool
from skillswitch.tools.builtin import calculate, convert_units
from skillswitch.tools.builtin_server import builtin_server
from skillswitch.tools.connection import ServerSettings
from skillswitch.tools.hub import HubServer, ToolHub
from skillswitch.tools.phrasing import (
    ARGUMENT_READERS,
    MAX_REQUEST_CHARS,
    arithmetic,
    conversion,
    place_timezone,
)
from skillswitch.tools.sources import MCPTool

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("request_text", "value"),
    [
        ("What is 18% of 2,450?", "441"),
        ("what is 17 times 23", "391"),
        ("compute (4.5 + 2.25) * 8 / 3", "18"),
        ("what is 2 to the power of 20", "1048576"),
        ("what's the square root of 1764", "42"),
        ("what is 12 squared minus 5", "139"),
        ("divide 1000 by 7", "142.857142857143"),
        ("subtract 8 from 50", "42"),
        ("Is 2,147,483,647 a prime number?", "2147483647 is prime"),
        ("is 221 prime", "221 is not prime: it is 13 x 17"),
        ("check whether 97 is prime", "97 is prime"),
        (
            "Compute the mean and standard deviation of 4, 8, 15, 16, 23, 42",
            "mean(4, 8, 15, 16, 23, 42) = 18; stdev(4, 8, 15, 16, 23, 42) = 13.490737563232",
        ),
        ("what's the average of 3, 5 and 10?", "6"),
        ("the median of 7, 1, 3 and 10", "5"),
        ("greatest common divisor of 48 and 180", "12"),
        ("lcm of 4, 6 and 10", "60"),
        ("what is 20 factorial", "2432902008176640000"),
        ("52 choose 5", "2598960"),
        ("What is 3 to the power 5?", "243"),
        ("what is 2^10", "1024"),
        ("3 raised to the 5th power", "243"),
        ("what is 2 to the 10th", "1024"),
        ("What is negative 5 times 3?", "-15"),
        ("what is minus 5 plus 3", "-2"),
        ("what is 7 minus negative 3", "10"),
        ("what is 10 minus 4", "6"),
    ],
)
def test_arithmetic_in_words(request_text: str, value: str) -> None:
    expression = arithmetic(request_text)
    assert expression is not None
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "request_text",
    [
        "hi there",
        "what is 42",
        "",
        "Prove that there are infinitely many prime numbers",
        "what is 360 prime factorised",
        "I have 3 kids!",
        "gcd of 12",
        # Numbers outside the expression would be dropped: "mean of 4 and 5 times 2" is not 10.
        "mean of 4 and 5 times 2",
        "what is 3 + 4 and also 7 - 2",
        "What is 2 + 2? I am 7 years old",
        # Words of arithmetic the reader does not read would be dropped: not 200, 8, 14, 3.
        "What is the log of 100 times 2?",
        "What is twice 5 plus 3?",
        "What is half of 10 plus 4?",
        "What is five times 3?",
        "What is 4 times 3 rounded?",
    ],
)
def test_no_arithmetic_is_invented(request_text: str) -> None:
    assert arithmetic(request_text) is None


@pytest.mark.parametrize(
    ("request_text", "expected", "result"),
    [
        ("Convert 26.2 miles to kilometres", (26.2, "mile", "km"), "26.2 mile = 42.1648 km"),
        ("how many grams are in 3 ounces", (3.0, "oz", "g"), "3 oz = 85.0486 g"),
        ("what is 30 degrees celsius in fahrenheit", (30.0, "c", "f"), "30 c = 86 f"),
        ("60 mph in km/h", (60.0, "mph", "km/h"), "60 mph = 96.5606 km/h"),
        ("convert 3 hours to seconds", (3.0, "h", "s"), "3 h = 10800 s"),
        ("What is negative 40 celsius in fahrenheit?", (-40.0, "c", "f"), "-40 c = -40 f"),
        ("minus 10 degrees celsius to kelvin", (-10.0, "c", "k"), "-10 c = 263.15 k"),
    ],
)
def test_conversions_in_words(
    request_text: str, expected: tuple[float, str, str], result: str
) -> None:
    assert conversion(request_text) == expected
    assert convert_units(*expected) == result


@pytest.mark.parametrize(
    "request_text",
    ["convert 5 and 10 miles to km", "3 miles to km for 2 people", "what is 12 feet in 3 inches"],
)
def test_no_conversion_drops_a_number(request_text: str) -> None:
    assert conversion(request_text) is None


def test_places_become_iana_zones() -> None:
    assert place_timezone("What time is it in Singapore right now?") == "Asia/Singapore"
    assert place_timezone("if it is 3pm in London what time is it in New York") in {
        "Europe/London",
        "America/New_York",
    }
    assert place_timezone("what time is it in UTC") == "UTC"
    assert place_timezone("what is today's date") is None
    assert ARGUMENT_READERS["clock"]("what is today's date") == {"timezone": "UTC"}
    assert ARGUMENT_READERS["clock"]("what time is it in Tokyo?") == {"timezone": "Asia/Tokyo"}
    assert ARGUMENT_READERS["clock"]("how many days until Christmas in Paris") is None
    assert ARGUMENT_READERS["clock"]("whats the time in new york") == {
        "timezone": "America/New_York"
    }


@pytest.mark.parametrize(
    "request_text",
    [
        "What time will it be in Tokyo in 3 hours?",
        "What time was it in Berlin 2 hours ago?",
        "What time is it in Tokyo when it is 9am in London?",
        "if it is 3pm in London what time is it in New York",
        "What is the time difference between Tokyo and London?",
        "what time is it in UTC+5",
        "What time is sunset in Oslo?",
        "What time does the bakery in Berlin open?",
        "What time is it in Tokyo tomorrow?",
    ],
)
def test_the_clock_tells_only_the_current_time(request_text: str) -> None:
    """Each was answered with the current time of one of its places."""
    assert ARGUMENT_READERS["clock"](request_text) is None


@pytest.fixture
def hub() -> Iterator[ToolHub]:
    with ToolHub([HubServer(ServerSettings("builtin", builtin_server()))]) as running:
        yield running


async def test_the_tool_expert_answers_through_the_builtin_mcp_server(hub: ToolHub) -> None:
    entries = {entry.public_name: entry for entry in await hub.tools()}
    calculator = ToolExpert(
        "calc", MCPTool(hub, entries["builtin__calculator"]), ARGUMENT_READERS["calculator"]
    )
    reply = await calculator.answer(parse_messages("What is 18% of 2,450?"))
    assert reply.text == "441"
    (call,) = reply.tool_calls
    assert (call.tool, call.arguments) == ("builtin__calculator", '{"expression": "18/100*2450"}')
    assert reply.usage.cost == 0
    units = ToolExpert("units", MCPTool(hub, entries["builtin__units"]), ARGUMENT_READERS["units"])
    converted = await units.answer(parse_messages("how many grams are in 3 ounces"))
    assert converted.text == "3 oz = 85.0486 g"
    with pytest.raises(ExpertError, match="does not give what builtin__calculator needs"):
        await calculator.answer(parse_messages("tell me a joke"))
    with pytest.raises(ExpertError, match="cannot convert mass"):
        await units.answer(parse_messages("convert 3 kg to km"))


async def test_a_tool_named_before_its_server_is_listed_serves_concurrent_first_calls(
    hub: ToolHub,
) -> None:
    """Found by the load test: the first calls of a tool named by its public name all list the
    servers at once; each must find the tool (one used to look up the entry another had
    resolved meanwhile, and failed)."""
    tool = MCPTool(hub, "builtin__calculator")
    expert = ToolExpert("calc", tool, ARGUMENT_READERS["calculator"])
    replies = await asyncio.gather(
        *(expert.answer(parse_messages(f"what is {n} times 3")) for n in range(8))
    )
    assert [reply.text for reply in replies] == [str(3 * n) for n in range(8)]
    assert tool.name == "builtin__calculator"


def test_readers_decline_documents() -> None:
    """Over 2,000 characters a request is not a question put in words; declining it also keeps
    the readers' searches short (they run in the event loop)."""
    question = "what is 6 times 7 " + " " * (MAX_REQUEST_CHARS - 20)
    assert ARGUMENT_READERS["calculator"](question) == {"expression": "6 * 7"}
    for name, read in ARGUMENT_READERS.items():
        assert read("what is 6 times 7 " + "x" * MAX_REQUEST_CHARS) is None, name
    # Named statistics are read a few at a time: 180,000 characters of "mean and" took 28 s.
    assert arithmetic("mean and " * 20_000) is None


def test_the_builtin_tools_over_stdio_through_the_hub() -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "skillswitch.tools.builtin_server"]
    )
    with ToolHub([HubServer(ServerSettings("builtin", params))]) as hub:
        tools = {t.public_name: t for t in hub.tools_sync()}
        assert set(tools) == {
            "builtin__calculator",
            "builtin__units",
            "builtin__clock",
            "builtin__calendar",
        }
        assert all(t.hints.read_only for t in tools.values())
        assert hub.call_sync("builtin__calculator", {"expression": "17 * 23"}).text == "391"


def test_text_argument_needs_one_required_string_parameter() -> None:
    def search(query: str, limit: int = 5) -> str:
        return query

    assert text_argument(FunctionTool(search).spec)("find papers") == {"query": "find papers"}
    with pytest.raises(ValueError, match="exactly one required string parameter"):
        text_argument(FunctionTool(convert_units).spec)
