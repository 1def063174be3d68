"""Skill keywords of a request from a keyword-extraction expert (the Symbolic-MoE path).

The expert is asked ``samples`` times (concurrently) for 2-5 keywords; the keywords named in at
least ``min_count`` of the replies are kept, most frequent first. A reply that is not a JSON
list is read as a comma- or line-separated list, so a model that ignores the format still counts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import anyio

from skillswitch.agents.base import Expert
from skillswitch.agents.messages import Message, Usage
from skillswitch.exceptions import ExpertError
from skillswitch.prompts import load_prompt

__all__ = ["KeywordExtraction", "extract_keywords", "parse_keywords"]

MAX_KEYWORDS = 5
_SEPARATORS = re.compile(r"[,\n;]+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


@dataclass(frozen=True, slots=True)
class KeywordExtraction:
    """The kept keywords, every sample's keywords, and what the samples cost."""

    keywords: tuple[str, ...]
    samples: tuple[tuple[str, ...], ...]
    usage: Usage
    errors: tuple[str, ...] = ()


def parse_keywords(text: str, most: int = MAX_KEYWORDS) -> tuple[str, ...]:
    """Keywords in a reply: a JSON list of strings, else a comma/line separated list.

    >>> parse_keywords('["Algebra", "probability"]')
    ('algebra', 'probability')
    >>> parse_keywords("1. number theory\\n2. modular arithmetic")
    ('number theory', 'modular arithmetic')
    """
    body = text.strip()
    start, end = body.find("["), body.rfind("]")
    items: list[str] | None = None
    if 0 <= start < end:
        try:
            parsed = json.loads(body[start : end + 1])
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            items = [str(item) for item in parsed if isinstance(item, str | int | float)]
    if items is None:
        items = [_LIST_ITEM.sub("", part) for part in _SEPARATORS.split(body)]
    seen: dict[str, None] = {}
    for item in items:
        word = " ".join(item.strip().strip("\"'`.").lower().split())
        if word and len(word) <= 60:
            seen.setdefault(word)
    return tuple(seen)[:most]


async def extract_keywords(
    expert: Expert,
    question: str,
    *,
    samples: int = 5,
    min_count: int = 2,
    most: int = MAX_KEYWORDS,
) -> KeywordExtraction:
    """Sample ``expert`` for the skill keywords of ``question``; keep the recurring ones.

    Failed samples are recorded, not raised; when every sample fails the result has no keywords
    (the caller then falls back to the router's skills).
    """
    if samples < 1 or min_count < 1:
        raise ValueError(f"samples and min_count must be >= 1, got {samples}, {min_count}")
    system, user = load_prompt("keywords").render(question=question, most=most)
    messages = [Message("system", system), Message("user", user)]
    replies: list[tuple[str, ...] | None] = [None] * samples
    usages: list[Usage] = [Usage()] * samples
    errors: list[str] = []

    async def sample(index: int) -> None:
        try:
            reply = await expert.answer(messages)
        except ExpertError as exc:
            errors.append(str(exc))
            return
        replies[index] = parse_keywords(reply.text, most)
        usages[index] = reply.usage

    async with anyio.create_task_group() as group:
        for index in range(samples):
            group.start_soon(sample, index)
    answered = [r for r in replies if r is not None]
    counts = Counter(word for reply in answered for word in reply)
    first_seen = {word: i for i, word in enumerate(w for r in answered for w in r)}
    kept = sorted(
        (word for word, count in counts.items() if count >= min(min_count, len(answered))),
        key=lambda word: (-counts[word], first_seen[word]),
    )
    total = sum(usages, Usage())
    return KeywordExtraction(tuple(kept[:most]), tuple(answered), total, tuple(errors))
