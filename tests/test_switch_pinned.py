"""Switch.run / stream with a pinned route: ``skill=`` (the router is skipped, that skill's
experts answer) and ``expert=`` (routing and recruitment skipped, that expert alone answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skillswitch.agents import TestExpert, TextDelta
from skillswitch.config import parse_config
from skillswitch.exceptions import RequestError, UnknownExpertError
from skillswitch.switch import Switch
from skillswitch.trace import Answer
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio

EXPERTS = """
  - {{name: calculator, base_url: '{u}', model: echo, skills: [math, unit_conversion]}}
  - {{name: polyglot, base_url: '{u}', model: echo, skills: [translation]}}
  - {{name: generalist, base_url: '{u}', model: echo}}
"""


@pytest.fixture
async def switch(upstream: str, cache_root: Path) -> AsyncIterator[Switch]:
    """One per test: the experts' connections belong to the test's event loop."""
    config = parse_config(
        DEFAULT_SKILLS
        + "\nexperts:\n"
        + EXPERTS.format(u=upstream)
        + "dispatch: {max_experts: 1}\n"
    )
    built = Switch.from_config(
        config,
        overrides={"calculator": TestExpert("calculator", reply="391")},
        cache_dir=cache_root,
    )
    async with built:
        yield built


async def test_a_pinned_skill_goes_to_its_experts_without_the_router(switch: Switch) -> None:
    # The router sends this to translation; the pinned skill wins.
    routed = await switch.run("translate good morning into French")
    assert routed.trace.decision.skill_names[0] == "translation"
    pinned = await switch.run("translate good morning into French", skill="math")
    decision = pinned.trace.decision
    assert decision.skill_names == ("math",)
    assert decision.classifier == "forced"
    assert decision.encoder == "none"
    assert [s.expert for s in pinned.trace.selections] == ["calculator"]
    assert pinned.text == "391"
    assert pinned.trace.to_dict()["routing"]["label"] == "math"


async def test_a_pinned_expert_answers_alone(switch: Switch) -> None:
    answer = await switch.run("what is 17 times 23", expert="polyglot")
    assert [s.expert for s in answer.trace.selections] == ["polyglot"]
    assert answer.text == "echo: what is 17 times 23"
    assert answer.trace.decision.classifier == "direct"
    assert answer.trace.decision.skill_names == ("translation",)  # what it declares
    assert answer.trace.aggregation is not None
    assert answer.trace.aggregation.mode == "pass_through"
    everything = await switch.run("hello", expert="generalist")
    assert everything.trace.decision.skill_names == switch.router.skills  # serves every skill


async def test_a_pinned_route_streams(switch: Switch) -> None:
    events = [e async for e in switch.stream("hi there", expert="polyglot")]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    final = events[-1]
    assert isinstance(final, Answer)
    assert "".join(deltas) == final.text == "echo: hi there"
    assert len(deltas) > 1  # token by token from the upstream
    assert [s.expert for s in final.trace.selections] == ["polyglot"]
    forced = [e async for e in switch.stream("hello", skill="math")]
    answer = forced[-1]
    assert isinstance(answer, Answer)
    assert answer.trace.decision.skill_names == ("math",)
    assert answer.text == "391"


async def test_pinning_mistakes(switch: Switch) -> None:
    with pytest.raises(RequestError, match=r"unknown skill 'maths'; the skills are: math, "):
        await switch.run("hi", skill="maths")
    with pytest.raises(UnknownExpertError, match=r"did you mean 'polyglot'"):
        await switch.run("hi", expert="polyglott")
    with pytest.raises(RequestError, match="not both"):
        await switch.run("hi", skill="math", expert="polyglot")
