"""Which of a request's skills got an answer: a request routed to several skills ("convert 5
miles to km and what time is it in Tokyo") whose experts answered some and not others gets a
note saying so in its answer, instead of an answer that silently leaves a part out."""

from __future__ import annotations

from collections.abc import Sequence

from skillswitch.agents.dispatch import Dispatch
from skillswitch.exceptions import ExpertDeclinedError
from skillswitch.router.decision import RoutingDecision
from skillswitch.trace import Selection

__all__ = ["unanswered_note"]

_MAX_REASON = 200


def unanswered_note(
    decision: RoutingDecision,
    selections: Sequence[Selection],
    dispatch: Dispatch,
) -> str:
    """The note to append to an answer (``""`` when every skill routed to was answered, or
    nothing was): each skill whose experts were asked and none answered, and why. An expert
    that serves every skill, answering, answers them all."""
    answered = {r.expert for r in dispatch.results if r.reply is not None}
    answered |= {r.fallback_for for r in dispatch.results if r.reply and r.fallback_for}
    if not answered:
        return ""
    covered = {s.skill for s in selections if s.expert in answered}
    if None in covered:
        return ""
    errors = {r.expert: r.error for r in dispatch.results if r.error is not None}
    parts = []
    for skill in decision.skill_names:
        asked = [s.expert for s in selections if s.skill == skill]
        if skill in covered or not asked:
            continue  # a skill no expert serves may be the router's second guess: not said
        declined = [e for e in asked if isinstance(errors.get(e), ExpertDeclinedError)]
        failed = [str(errors[e]) for e in asked if e in errors and e not in declined]
        said = [f"{' and '.join(declined)} declined it"] if declined else []
        why = "; ".join(said + failed) or "no answer"
        if len(why) > _MAX_REASON:
            why = why[: _MAX_REASON - 3] + "..."
        parts.append(f"{skill}: {why}")
    if not parts:
        return ""
    return f"\n\n(Not answered: {'; '.join(parts)}; the trace has each expert's reason.)"
