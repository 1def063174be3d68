"""Turn several experts' replies into one answer.

One reply passes through. Replies whose final answers agree under the extraction rule skip the
aggregator (Symbolic-MoE's observation: agreement is a strong signal, and aggregation costs a
call). Otherwise the aggregator expert synthesises them with the Mixture-of-Agents prompt; if it
fails, the first (best-ranked) reply is returned and the result says why. A reply that asks
for the caller's tools is the answer (the best-ranked such reply): the caller must run them
before anything can be synthesised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from skillswitch.agents.base import Expert, ExpertReply
from skillswitch.agents.client_tools import ClientToolCall
from skillswitch.agents.messages import Message, Usage
from skillswitch.exceptions import ExpertError
from skillswitch.prompts import load_prompt

__all__ = [
    "Aggregation",
    "AnswerRule",
    "CombineMethod",
    "Synthesis",
    "aggregate",
    "extract_answer",
    "reformat_prompt",
    "settle",
    "weighted_vote",
]

AnswerRule = Literal["option_letter", "last_number", "normalised_text"]
Mode = Literal[
    "pass_through",
    "agreement",
    "voted",
    "synthesised",
    "aggregator_failed",
    "tool_calls",
    "formatted",
]
CombineMethod = Literal["synthesise", "vote", "learned"]
AnswerScorer = Callable[[Sequence[str | None]], Mapping[str, float]]

_OPTION = re.compile(
    r"(?:answer\s*(?:is|:)?\s*\(?([A-J])\)?(?![A-Za-z]))|(?:^\s*\(?([A-J])\)?\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def extract_answer(text: str, rule: AnswerRule) -> str | None:
    """The final answer in ``text`` under ``rule`` (None when there is none).

    >>> extract_answer("... so the answer is (C).", "option_letter")
    'C'
    >>> extract_answer("3 apples + 4 = 7 apples, i.e. 7.0", "last_number")
    '7'
    """
    if rule == "option_letter":
        matches = _OPTION.findall(text)
        if not matches:
            return None
        first, second = matches[-1]
        return str(first or second).upper()
    if rule == "last_number":
        numbers = _NUMBER.findall(text)
        if not numbers:
            return None
        value = float(numbers[-1].replace(",", ""))
        return str(int(value)) if value.is_integer() else repr(value)
    normalised = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    return normalised or None


@dataclass(frozen=True, slots=True)
class Aggregation:
    """The one answer, how it was reached, and what aggregation itself cost."""

    text: str
    mode: Mode
    answers: tuple[str | None, ...]
    """Each reply's extracted answer, in reply order."""
    usage: Usage
    error: str | None = None
    detail: str | None = None
    """How the answer was reached when that needs words (e.g. the vote's tally)."""
    tool_calls: tuple[ClientToolCall, ...] = ()
    """The caller's tools the answer asks it to run (mode ``tool_calls``)."""


@dataclass(frozen=True, slots=True)
class Synthesis:
    """Replies that only the aggregator can make one answer of: the prompt to send it, and what
    the answer is without it (the best-ranked reply)."""

    prompt: tuple[Message, ...]
    """The aggregator's messages: the Mixture-of-Agents system prompt and the replies."""
    answers: tuple[str | None, ...]
    first: str
    """The best-ranked reply's text: the answer when the aggregator fails or there is none."""

    def synthesised(self, reply: ExpertReply) -> Aggregation:
        return Aggregation(reply.text, "synthesised", self.answers, reply.usage)

    def failed(self, why: str) -> Aggregation:
        return Aggregation(self.first, "aggregator_failed", self.answers, Usage(), why)


def settle(
    question: Sequence[Message],
    replies: Sequence[ExpertReply],
    *,
    rule: AnswerRule = "normalised_text",
    method: CombineMethod = "synthesise",
    weights: Sequence[float] | None = None,
    scorer: AnswerScorer | None = None,
) -> Aggregation | Synthesis:
    """``aggregate`` up to the aggregator's call: the ``Aggregation`` when the replies settle
    it without one (one reply, agreement, a vote, a call of the caller's tools), else the
    ``Synthesis`` to send the aggregator (which the caller may stream)."""
    if not replies:
        raise ValueError("aggregate() needs at least one reply")
    answers = tuple(extract_answer(reply.text, rule) for reply in replies)
    asking = next((reply for reply in replies if reply.client_tool_calls), None)
    if asking is not None:
        names = ", ".join(call.name for call in asking.client_tool_calls)
        others = len(replies) - 1
        detail = f"{asking.expert} asks the caller to run {names}" + (
            f"; {others} other answer(s) not aggregated" if others else ""
        )
        return Aggregation(
            asking.text,
            "tool_calls",
            answers,
            Usage(),
            detail=detail,
            tool_calls=asking.client_tool_calls,
        )
    if len(replies) == 1:
        return Aggregation(replies[0].text, "pass_through", answers, Usage())
    if answers[0] is not None and all(answer == answers[0] for answer in answers):
        return Aggregation(replies[0].text, "agreement", answers, Usage())
    if method == "learned" and scorer is not None and any(a is not None for a in answers):
        scores = scorer(answers)
        if scores:
            winner = max(scores, key=lambda answer: scores[answer])
            return _voted(replies, answers, winner, scores, "learned")
    if method == "vote" and any(answer is not None for answer in answers):
        if weights is not None and len(weights) != len(replies):
            raise ValueError(f"{len(weights)} weights for {len(replies)} replies")
        winner, tally = weighted_vote(answers, weights or [1.0] * len(replies))
        return _voted(replies, answers, winner, tally, "votes")
    system, user = load_prompt("aggregate").render(
        question=_question_text(question),
        answers=[{"expert": reply.expert, "text": reply.text} for reply in replies],
    )
    return Synthesis((Message("system", system), Message("user", user)), answers, replies[0].text)


async def aggregate(
    question: Sequence[Message],
    replies: Sequence[ExpertReply],
    *,
    aggregator: Expert | None,
    rule: AnswerRule = "normalised_text",
    method: CombineMethod = "synthesise",
    weights: Sequence[float] | None = None,
    scorer: AnswerScorer | None = None,
) -> Aggregation:
    """One answer from ``replies`` (best-ranked first); raises ValueError when there are none.

    ``method="vote"`` picks the extracted answer with the largest total ``weights`` (one per
    reply; default 1 each; ties go to the better-ranked reply) and returns the text of the
    best-ranked reply giving it. ``method="learned"`` lets ``scorer`` (answers in reply order
    -> {answer: score}) pick. When no reply has an extractable answer it synthesises.
    """
    settled = settle(question, replies, rule=rule, method=method, weights=weights, scorer=scorer)
    if isinstance(settled, Aggregation):
        return settled
    if aggregator is None:
        return settled.failed("no aggregator")
    try:
        synthesis = await aggregator.answer(list(settled.prompt))
    except ExpertError as exc:
        return settled.failed(str(exc))
    return settled.synthesised(synthesis)


def reformat_prompt(
    question: Sequence[Message], answer: str, instruction: str
) -> tuple[Message, ...]:
    """The aggregator's messages to put ``answer`` in the form ``instruction`` describes (the
    caller's ``response_format``), keeping what it says."""
    system, user = load_prompt("reformat").render(
        question=_question_text(question), answer=answer, instruction=instruction
    )
    return Message("system", system), Message("user", user)


def _voted(
    replies: Sequence[ExpertReply],
    answers: tuple[str | None, ...],
    winner: str,
    scores: Mapping[str, float],
    label: str,
) -> Aggregation:
    """The best-ranked reply giving ``winner``, with the scores in the detail."""
    chosen = next(r for r, a in zip(replies, answers, strict=True) if a == winner)
    detail = ", ".join(f"{answer}: {value:.3f}" for answer, value in scores.items())
    return Aggregation(chosen.text, "voted", answers, Usage(), detail=f"{label} {detail}")


def weighted_vote(
    answers: Sequence[str | None], weights: Sequence[float]
) -> tuple[str, dict[str, float]]:
    """The answer with the largest total weight (ties: the earliest) and the tally.

    >>> weighted_vote(["B", "C", "C", None], [2.0, 0.8, 0.9, 5.0])
    ('B', {'B': 2.0, 'C': 1.7})
    """
    tally: dict[str, float] = {}
    for answer, weight in zip(answers, weights, strict=True):
        if answer is not None:
            tally[answer] = tally.get(answer, 0.0) + float(weight)
    if not tally:
        raise ValueError("weighted_vote() needs at least one extracted answer")
    best = max(tally.values())
    winner = next(answer for answer, total in tally.items() if total >= best - 1e-12)
    return winner, {answer: round(total, 6) for answer, total in tally.items()}


def _question_text(messages: Sequence[Message]) -> str:
    """The conversation the experts answered, as the aggregator should read it."""
    if len(messages) == 1:
        return messages[0].content
    return "\n".join(f"[{m.role}] {m.content}" for m in messages)
