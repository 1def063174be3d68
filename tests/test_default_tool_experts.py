"""The embedded default config answers math, unit and time requests with real results from
skillswitch's builtin MCP server (a stdio subprocess), with no model and no key."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from skillswitch.agents.messages import TextDelta
from skillswitch.config import parse_config
from skillswitch.exceptions import (
    ConfigError,
    ExpertDeclinedError,
    ExpertRequestError,
    ExpertsFailedError,
)
from skillswitch.server.api import create_app
from skillswitch.switch import Switch
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def switch(cache_root: Path) -> AsyncIterator[Switch]:
    async with Switch.from_config(None, cache_dir=cache_root) as default:
        yield default


async def test_math_units_and_time_are_answered_by_the_builtin_tools(switch: Switch) -> None:
    percent = await switch.run("What is 18% of 2,450?")
    assert percent.text == "441"
    (result,) = percent.trace.to_dict()["results"]
    assert result["expert"] == "calculator"
    assert result["tool_calls"][0]["tool"] == "builtin__calculator"
    assert result["usage"]["cost"] == 0
    miles = await switch.run("Convert 26.2 miles to kilometres")
    assert miles.text == "26.2 mile = 42.1648 km"
    singapore = await switch.run("What time is it in Singapore right now?")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", singapore.text)
    prime = await switch.run("Is 221 a prime number?")
    assert prime.text == "221 is not prime: it is 13 x 17"
    stats = await switch.run("Compute the mean and standard deviation of 4, 8, 15, 16, 23, 42")
    assert stats.text == (
        "mean(4, 8, 15, 16, 23, 42) = 18; stdev(4, 8, 15, 16, 23, 42) = 13.490737563232"
    )
    span = await switch.run("How many days are there between 3 March and 18 June?")
    year = dt.date.today().year
    assert span.text == f"{year}-03-03 to {year}-06-18: 107 days (15 weeks and 2 days)"
    # The datetime skill has two tool experts: the clock declines, the calendar answers.
    outcomes = {r["expert"]: r["error"] for r in span.trace.to_dict()["results"]}
    assert outcomes["calendar"] is None
    assert "does not give what builtin__clock needs" in outcomes["clock"]
    assert switch.hub is not None
    (health,) = await switch.hub.health()
    assert (health["server"], health["transport"], health["state"]) == ("builtin", "stdio", "ready")


async def test_what_the_tools_cannot_do_fails_clearly(switch: Switch) -> None:
    with pytest.raises(ExpertsFailedError) as caught:
        await switch.run("Prove that there are infinitely many prime numbers")
    assert "the request does not give what builtin__calculator needs" in str(
        caught.value.exceptions[0]
    )
    refused = await switch.run("Transfer $300 from my checking account to savings")
    assert refused.out_of_scope


async def test_a_request_routed_to_the_wrong_tool_reaches_the_right_one(switch: Switch) -> None:
    """The router puts "what is 3 times 3" nearer unit conversion; the converter declines it
    and the calculator, the router's next candidate, answers."""
    answer = await switch.run("what is 3 times 3")
    assert answer.text == "9"
    asked = [(s.expert, s.skill) for s in answer.trace.selections]
    assert asked == [("converter", "unit_conversion"), ("calculator", "math")]
    assert "the router's next candidate" in answer.trace.selections[-1].reason


async def test_declined_requests_do_not_cut_the_tool_off(switch: Switch) -> None:
    """A decline is the request's, not the tool's: after more declines in a row than the
    circuit breaker's failures, the calculator still answers arithmetic."""
    for _ in range(6):
        with pytest.raises(ExpertsFailedError) as caught:
            await switch.run("Prove that there are infinitely many prime numbers")
        # the calculator, then the experts of the router's next candidate skills
        declined = caught.value.exceptions
        assert all(isinstance(error, ExpertDeclinedError) for error in declined)
        assert declined[0].expert == "calculator"
    answer = await switch.run("what is 6 times 7")
    assert answer.text == "42"


async def test_a_tool_refusing_the_arguments_does_not_cut_it_off(switch: Switch) -> None:
    """Division by zero is the request's fault, not the tool's: it is refused (not retried,
    not counted by the circuit breaker), and after more refusals in a row than the breaker's
    failures the calculator still answers."""
    for _ in range(6):
        with pytest.raises(ExpertsFailedError) as caught:
            await switch.run("what is 10 / 0", expert="calculator")
        (refused,) = caught.value.exceptions
        assert isinstance(refused, ExpertRequestError)
        # the tool's own words after its name, without the MCP SDK's "Error executing tool"
        assert str(refused) == "expert 'calculator': builtin__calculator: division by zero"
    answer = await switch.run("what is 2 + 2", expert="calculator")
    assert answer.text == "4"


def test_a_request_every_tool_expert_declines_is_a_422_over_http(cache_root: Path) -> None:
    """Nothing failed: the calculator finds no arithmetic in the request. The caller is told to
    rephrase it (422, code expert_declined, with the trace), not that an upstream broke (502)."""
    default = Switch.from_config(None, cache_dir=cache_root)
    with (
        serve(create_app(default), lifespan="on") as base,  # its shutdown closes the switch
        openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0) as client,
    ):
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(
                model="calculator", messages=[{"role": "user", "content": "tell me a joke"}]
            )
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["code"] == "expert_declined"
        assert error["param"] == "messages"
        assert "does not give what builtin__calculator needs; rephrase it" in error["message"]
        assert error["skillswitch"]["results"][0]["expert"] == "calculator"
        answered = client.chat.completions.create(
            model="calculator", messages=[{"role": "user", "content": "what is 6 times 7"}]
        )
        assert answered.choices[0].message.content == "42"
        # Refused as sent (a 5xx would have the client retry it).
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="skillswitch", messages=[{"role": "user", "content": "what is 10 / 0"}]
            )
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["code"] == "request_refused"
        assert "division by zero" in refused.value.body["message"]
        # Routed to a skill that no expert of the default config serves: 422, not a 500.
        with pytest.raises(openai.UnprocessableEntityError) as unserved:
            client.chat.completions.create(
                model="skillswitch",
                messages=[{"role": "user", "content": "hello there, how are you today?"}],
            )
        assert isinstance(unserved.value.body, dict)
        assert unserved.value.body["code"] == "no_expert"
        assert "no expert serves the skills 'smalltalk'" in unserved.value.body["message"]


def test_an_unknown_field_name_of_any_length_is_shown_short(cache_root: Path) -> None:
    """A 100,000-character field name was logged and sent back whole: logging it blocked the
    server's event loop for tens of seconds (the rich handler wraps one long word in quadratic
    time) and the response header was 100 KB."""
    default = Switch.from_config(None, cache_dir=cache_root)
    body = {"model": "calculator", "messages": [{"role": "user", "content": "2+2"}]}
    with serve(create_app(default), lifespan="on") as base:
        response = httpx.post(
            f"{base}/v1/chat/completions", json={**body, "k" * 100_000: 1}, timeout=60
        )
    assert response.status_code == 200, response.text
    shown = response.headers["x-skillswitch-ignored-fields"]
    assert shown == "k" * 61 + "..."


def test_tool_expert_config_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            DEFAULT_SKILLS
            + """
experts:
  - {name: a, kind: tool, tool: 'builtin__*'}
  - {name: b, kind: tool, tool: docs__search}
  - {name: c, kind: tool, tool: builtin__search}
  - {name: d, kind: tool, tool: calculater}
tools:
  servers:
    - {name: builtin, command: [skillswitch-builtin-tools]}
"""
        )
    text = str(caught.value)
    assert "experts[0].tool: 'builtin__*': a tool expert calls one tool" in text
    assert "experts[1].tool: 'docs__search' names MCP server 'docs', which is not" in text
    assert "experts[2].tool: arguments: words reads requests for the builtin tools" in text
    assert "use arguments: text" in text
    assert "experts[3].tool: unknown tool 'calculater'; did you mean 'calculator'?" in text
    with pytest.raises(ConfigError) as wrong_kind:
        parse_config(DEFAULT_SKILLS + "\nexperts:\n  - {name: a, kind: robot}\n")
    assert "'openai', 'tool'" in str(wrong_kind.value)


async def test_a_part_no_expert_answered_is_said_in_the_answer(switch: Switch) -> None:
    """The time was left out without a word: the answer was the conversion alone."""
    request = "convert 5 miles to km and what time is it in Tokyo"
    note = "\n\n(Not answered: datetime: clock and calendar declined it; the trace has each "
    answer = await switch.run(request)
    assert answer.trace.decision.skill_names == ("unit_conversion", "datetime")
    assert answer.text.startswith("5 mile = 8.04672 km" + note)
    streamed = [part async for part in switch.stream(request)]
    text = "".join(part.text for part in streamed if isinstance(part, TextDelta))
    assert text == answer.text
    whole = await switch.run("What is 18% of 2,450?")
    assert whole.text == "441"  # every part answered: no note
