"""Keyword extraction: sampled several times, the recurring keywords kept."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from skillswitch.agents import FunctionExpert, Message
from skillswitch.agents.keywords import extract_keywords, parse_keywords
from skillswitch.exceptions import ExpertHTTPError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["Algebra", "probability"]', ("algebra", "probability")),
        ('Sure! ["a", "b", "a"] hope it helps', ("a", "b")),
        ("- number theory\n- modular arithmetic.", ("number theory", "modular arithmetic")),
        ("calculus, limits; series", ("calculus", "limits", "series")),
        ("", ()),
        ("[]", ()),
    ],
)
def test_parse_keywords(text: str, expected: tuple[str, ...]) -> None:
    assert parse_keywords(text) == expected


async def test_keeps_keywords_named_in_at_least_min_count_samples() -> None:
    replies = itertools.cycle(
        [
            '["algebra", "geometry"]',
            '["algebra", "number theory"]',
            '["geometry", "algebra"]',
            '["trigonometry"]',
            '["algebra"]',
        ]
    )
    prompts: list[Sequence[Message]] = []

    def model(messages: Sequence[Message]) -> str:
        prompts.append(messages)
        return next(replies)

    result = await extract_keywords(
        FunctionExpert("kw", model), "Find the area of the triangle", samples=5, min_count=2
    )
    assert result.keywords == ("algebra", "geometry")
    assert len(result.samples) == 5
    assert len(prompts) == 5
    assert "Do not answer the" in prompts[0][0].content
    assert "Find the area of the triangle" in prompts[0][1].content


async def test_failed_samples_are_recorded_not_raised() -> None:
    calls = itertools.count()

    def flaky(messages: Sequence[Message]) -> str:
        if next(calls) % 2:
            raise ExpertHTTPError("kw", 503, "busy")
        return '["statistics"]'

    result = await extract_keywords(FunctionExpert("kw", flaky), "q", samples=4, min_count=2)
    assert result.keywords == ("statistics",)
    assert len(result.errors) == 2

    def broken(messages: Sequence[Message]) -> str:
        raise ExpertHTTPError("kw", 500, "down")

    nothing = await extract_keywords(FunctionExpert("kw", broken), "q", samples=3)
    assert nothing.keywords == ()
    assert len(nothing.errors) == 3
