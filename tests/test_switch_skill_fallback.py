"""The router's next guess: when every expert of the routed skill declines a request, or no
expert serves it, the experts of the router's next candidate skill are asked (the real router,
on three skills; fakes play the experts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import FunctionExpert, Message, TestExpert
from skillswitch.config import parse_config
from skillswitch.exceptions import ExpertDeclinedError, ExpertsFailedError, NoExpertError
from skillswitch.switch import Switch
from skillswitch.trace import Answer

pytestmark = pytest.mark.anyio

SKILLS = """
version: 1
skills:
  - name: unit_conversion
    description: Converting quantities between units.
    examples: [convert 5 miles to kilometers, how many grams are in 3 ounces, 60 mph in km/h]
  - name: math
    description: Arithmetic that needs an exact number.
    examples: [what is 17 times 23, calculate 15% of 240, what is 2 to the power of 20]
  - name: translation
    description: Translating text between languages.
    examples: [translate good morning into French, how do you say thank you in German]
experts:
  - {name: converter, base_url: 'http://127.0.0.1:9/v1', model: m, skills: [unit_conversion]}
  - {name: calculator, base_url: 'http://127.0.0.1:9/v1', model: m, skills: [math]}
"""
QUESTION = "convert 5 miles to km"


def declining(name: str) -> FunctionExpert:
    def decline(messages: Sequence[Message]) -> str:
        raise ExpertDeclinedError(name, "nothing of my kind in it")

    return FunctionExpert(name, decline)


def make(cache_root: Path, dispatch: str = "", **experts: Any) -> Switch:
    config = parse_config(SKILLS + dispatch)
    return Switch.from_config(config, overrides=experts, cache_dir=cache_root)


async def answer_of(switch: Switch, text: str, stream: bool) -> Answer:
    if not stream:
        return await switch.run(text)
    deltas, final = [], None
    async for event in switch.stream(text):
        if isinstance(event, Answer):
            final = event
        else:
            deltas.append(event.text)
    assert final is not None
    assert "".join(deltas) == final.text
    return final


@pytest.mark.parametrize("stream", [False, True])
async def test_a_declined_request_goes_to_the_next_candidate_skill(
    cache_root: Path, stream: bool
) -> None:
    switch = make(
        cache_root,
        converter=declining("converter"),
        calculator=TestExpert("calculator", reply="8.04672"),
    )
    async with switch:
        assert switch.route(QUESTION).skill_names == ("unit_conversion",)
        answer = await answer_of(switch, QUESTION, stream)
    assert answer.text == "8.04672"  # and no "(Not answered: ...)" note: it was
    trace = answer.trace.to_dict()
    assert [(e["expert"], e["skill"]) for e in trace["experts"]] == [
        ("converter", "unit_conversion"),
        ("calculator", "math"),
    ]
    reason = trace["experts"][1]["reason"]
    assert reason.startswith("serves skill 'math', the router's next candidate (score 0.")
    assert reason.endswith("converter declined it")
    assert [r["ok"] for r in trace["results"]] == [False, True]


async def test_no_expert_for_the_routed_skill_asks_the_next_one_with_experts(
    cache_root: Path,
) -> None:
    """Here the router's next candidates are unit_conversion (declined), then math."""
    switch = make(
        cache_root,
        converter=declining("converter"),
        calculator=TestExpert("calculator", reply="Bonjour"),
    )
    async with switch:
        answer = await switch.run("translate good morning into French")
    assert answer.trace.decision.skill_names == ("translation",)
    first, second = answer.trace.selections
    assert (first.expert, first.skill) == ("converter", "unit_conversion")
    assert first.reason.endswith("no expert serves 'translation'")
    assert (second.expert, second.skill) == ("calculator", "math")
    assert second.reason.endswith("converter declined it")
    assert answer.text == "Bonjour"


async def test_when_every_fallback_declines_the_first_error_stands(cache_root: Path) -> None:
    everyone_declines = {"converter": declining("converter"), "calculator": declining("calculator")}
    async with make(cache_root, **everyone_declines) as switch:
        with pytest.raises(ExpertsFailedError) as failed:
            await switch.run(QUESTION)
        assert [e.expert for e in failed.value.exceptions] == ["converter", "calculator"]
        assert failed.value.trace is not None
        assert [s.expert for s in failed.value.trace.selections] == ["converter", "calculator"]
        with pytest.raises(NoExpertError, match="no expert serves the skills 'translation'"):
            await switch.run("translate good morning into French")


@pytest.mark.parametrize("pinned", [{"skill": "unit_conversion"}, {"expert": "converter"}])
async def test_no_fallback_when_off_or_when_the_caller_named_the_route(
    cache_root: Path, pinned: dict[str, str]
) -> None:
    experts = {"converter": declining("converter"), "calculator": TestExpert("calculator")}
    async with make(cache_root, **experts) as switch:
        with pytest.raises(ExpertsFailedError):
            await switch.run(QUESTION, **pinned)
    off = "dispatch: {skill_fallbacks: 0}\n"
    async with make(cache_root, off, **experts) as switch:
        with pytest.raises(ExpertsFailedError):
            await switch.run(QUESTION)
        with pytest.raises(NoExpertError):
            await switch.run("translate good morning into French")


async def test_a_failure_is_not_a_decline(cache_root: Path) -> None:
    """An expert that failed (not declined) has its configured fallbacks; the request does
    not move to another skill."""

    def broken(messages: Sequence[Message]) -> str:
        raise RuntimeError("bug")

    calculator = TestExpert("calculator", reply="never")
    async with make(
        cache_root, converter=FunctionExpert("converter", broken), calculator=calculator
    ) as switch:
        with pytest.raises(ExpertsFailedError) as failed:
            await switch.run(QUESTION)
    assert failed.value.trace is not None
    assert [s.expert for s in failed.value.trace.selections] == ["converter"]
