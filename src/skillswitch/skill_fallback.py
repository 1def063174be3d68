"""The router's next guess: when no expert serves the skills a request was routed to, or every
expert asked declined it (a tool expert that finds nothing of its kind in it: "what is 3 times
3" routed to unit conversion), the experts of the next skill among the router's candidates are
asked, best-scoring first, up to ``dispatch.skill_fallbacks`` skills.

Only a decline moves the request on: an expert that failed (an error, a timeout) has its
configured fallbacks, and one that refused the request as sent ("10 / 0") would refuse it
under any skill.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from skillswitch.agents.dispatch import Dispatch
from skillswitch.exceptions import ExpertDeclinedError
from skillswitch.router.decision import RoutingDecision
from skillswitch.trace import Selection

__all__ = ["all_declined", "next_skill_experts"]


def all_declined(dispatch: Dispatch) -> bool:
    """True when experts were asked, none answered, and each one declined."""
    return bool(dispatch.results) and all(
        result.reply is None and isinstance(result.error, ExpertDeclinedError)
        for result in dispatch.results
    )


def next_skill_experts(
    decision: RoutingDecision,
    tried: Collection[str],
    asked: Collection[str],
    serving: Callable[[str], Iterable[str]],
    why: str,
    *,
    most: int,
) -> tuple[str, tuple[Selection, ...]] | None:
    """The best-scoring candidate skill not in ``tried`` with experts not yet ``asked``
    (``serving(skill)``: the experts that declare it), and at most ``most`` of them; None when
    no candidate has any. ``why``: what happened to the skills before it, for the trace."""
    for candidate in decision.candidates:
        if candidate.skill in tried:
            continue
        fresh = [name for name in serving(candidate.skill) if name not in asked][:most]
        if fresh:
            reason = (
                f"serves skill {candidate.skill!r}, the router's next candidate "
                f"(score {candidate.score:.3f}): {why}"
            )
            return candidate.skill, tuple(
                Selection(name, candidate.skill, reason) for name in fresh
            )
    return None
