"""Recruit experts for one request from their profiles (Symbolic-MoE, made online).

Each candidate is scored by its local competence on the request's skills times its global
strength; the top ``k`` are recruited (or ``k`` are drawn from a softmax over the scores with a
temperature, as in the paper). Cost-aware: a per-request budget on expected cost limits ``k``,
``cost_weight`` trades score against cost, and ``near_tie`` swaps a pick for a cheaper expert
whose expected accuracy is within that distance.

>>> profiles = ExpertProfiles.load("profiles/")  # doctest: +SKIP
>>> recruiter = Recruiter(profiles, RecruitmentPolicy(k=3))  # doctest: +SKIP
>>> [r.expert for r in recruiter.recruit({"math": 0.71})]  # doctest: +SKIP
['gemini-1.5-pro-002', 'Meta-Llama-3_1-70B-Instruct', 'jamba-1.5-large']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from skillswitch.router.profiles import ExpertProfiles, log_odds

__all__ = ["Recruit", "Recruiter", "RecruitmentPolicy", "cascade_length", "stage_settled"]


@dataclass(frozen=True, slots=True)
class RecruitmentPolicy:
    """How many experts to recruit and what they may cost.

    ``k``: most experts per request. ``temperature``: 0 recruits the top ``k`` by score; above
    0 draws ``k`` without replacement from softmax(score / temperature) (seeded by ``seed``).
    ``budget``: most expected cost per request (same unit as the costs, e.g. USD), None = no
    limit. ``cost_weight``: experts are ranked by score - cost_weight * expected cost.
    ``near_tie``: a pick is replaced by a cheaper candidate whose expected accuracy on the
    request's skills is at most this much lower.
    """

    k: int = 3
    temperature: float = 0.0
    budget: float | None = None
    cost_weight: float = 0.0
    near_tie: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")
        if self.cost_weight < 0 or self.near_tie < 0:
            raise ValueError("cost_weight and near_tie must be >= 0")


@dataclass(frozen=True, slots=True)
class Recruit:
    """One recruited expert and why."""

    expert: str
    score: float
    """competence x strength: the ranking score."""
    competence: float
    """Expected accuracy on the request's skills (local competence)."""
    strength: float
    expected_cost: float
    reason: str

    @property
    def vote_weight(self) -> float:
        return float(log_odds(self.competence))


class Recruiter:
    """Scores profiled experts for a request's skills and picks who answers it.

    ``costs``: expected cost of one call per expert (missing: 0). ``available``: the experts
    that may be recruited (default: every profiled expert); unprofiled names are ignored and
    listed in :attr:`unprofiled`.
    """

    def __init__(
        self,
        profiles: ExpertProfiles,
        policy: RecruitmentPolicy | None = None,
        *,
        costs: Mapping[str, float] | None = None,
        available: Sequence[str] | None = None,
    ) -> None:
        self.profiles = profiles
        self.policy = policy or RecruitmentPolicy()
        names = list(profiles.experts if available is None else available)
        self.unprofiled = tuple(n for n in names if not profiles.has_expert(n))
        self.candidates = tuple(n for n in names if profiles.has_expert(n))
        if not self.candidates:
            raise ValueError(
                "no recruitable expert: none of "
                f"{', '.join(names[:5]) or '(none)'} has a profile "
                f"(profiled: {', '.join(profiles.experts[:5])}...)"
            )
        self._columns = np.array([profiles.expert_index(n) for n in self.candidates])
        self._costs = np.array([float((costs or {}).get(n, 0.0)) for n in self.candidates])
        self._rng = np.random.default_rng(self.policy.seed)

    def competences(self, skill_weights: Mapping[str, float]) -> dict[str, float]:
        """Expected accuracy of every candidate on these skills."""
        local = self.profiles.local_competence(skill_weights)[self._columns]
        return dict(zip(self.candidates, map(float, local), strict=True))

    def recruit(
        self, skill_weights: Mapping[str, float], *, k: int | None = None
    ) -> tuple[Recruit, ...]:
        """Recruit experts for a request whose skills have these weights (e.g. router scores)."""
        policy = self.policy
        want = min(k or policy.k, len(self.candidates))
        local = self.profiles.local_competence(skill_weights)[self._columns]
        strength = self.profiles.strength[self._columns]
        score = local * strength
        utility = score - policy.cost_weight * self._costs
        order = self._order(utility)
        known = [s for s in skill_weights if self.profiles.has_skill(s)]
        basis = ", ".join(known) if known else "global strength (no profiled skill matched)"
        picks: list[int] = []
        spent = 0.0
        over_budget = False
        remaining = list(order)
        while remaining and len(picks) < want:
            pick = remaining[0]
            if policy.near_tie > 0:
                pick = self._cheaper_near_tie(pick, remaining, local)
            cost = float(self._costs[pick])
            if policy.budget is not None and spent + cost > policy.budget + 1e-12:
                limit = policy.budget + 1e-12
                affordable = [i for i in remaining if spent + self._costs[i] <= limit]
                if not affordable:
                    if not picks:  # never answer nothing: take the cheapest, say so
                        over_budget = True
                        picks.append(min(remaining, key=lambda i: (self._costs[i], -utility[i])))
                    break
                pick = affordable[0]
            picks.append(pick)
            spent += float(self._costs[pick])
            remaining.remove(pick)
        recruits = []
        for rank, i in enumerate(picks, start=1):
            reason = (
                f"rank {rank}: competence {local[i]:.3f} on {basis} x strength {strength[i]:.3f}"
            )
            if self._costs[i] > 0:
                reason += f", expected cost {self._costs[i]:.6g}"
            if over_budget:
                reason += f" (over the budget of {policy.budget:g}: the cheapest expert)"
            recruits.append(
                Recruit(
                    self.candidates[i],
                    float(score[i]),
                    float(local[i]),
                    float(strength[i]),
                    float(self._costs[i]),
                    reason,
                )
            )
        return tuple(recruits)

    def widen(
        self,
        skill_weights: Mapping[str, float],
        asked: Sequence[str],
        *,
        k: int,
        vector: np.ndarray | None = None,
        exclude: str | None = None,
    ) -> tuple[Recruit, ...]:
        """The ``k`` experts to add when the first stage (``asked``) disagreed: the best by
        tie-break competence on these skills (on the request's nearest validation questions
        when ``vector``, its embedding, is given and the profiles have neighbours), less
        ``cost_weight`` x cost, within what the budget leaves. Profiles without tie-break
        competence: the next by :meth:`recruit`'s ranking. ``exclude``: a validation question
        id kept out of the neighbours (fitting on validation questions)."""
        taken = set(asked)
        base = self.profiles.tiebreak_competence(skill_weights)
        if base is None:
            ranked = self.recruit(skill_weights, k=len(taken) + k)
            return tuple(r for r in ranked if r.expert not in taken)[:k]
        neighbours = self.profiles.neighbours
        if vector is not None and neighbours is not None:
            tiebreak = neighbours.competence(vector, base, exclude=exclude)
            basis = (
                f"the {neighbours.k} nearest validation questions where the first stage disagreed"
            )
        else:
            tiebreak = base
            known = [s for s in skill_weights if self.profiles.has_skill(s)]
            basis = (
                f"questions of {', '.join(known)} where the first stage disagreed"
                if known
                else "every question where the first stage disagreed"
            )
        local = self.profiles.local_competence(skill_weights)[self._columns]
        tiebreak = tiebreak[self._columns]
        utility = tiebreak - self.policy.cost_weight * self._costs
        left = np.inf
        if self.policy.budget is not None:
            spent = sum(
                float(c) for n, c in zip(self.candidates, self._costs, strict=True) if n in taken
            )
            left = self.policy.budget - spent + 1e-12
        order: list[int] = []
        for i in np.argsort(-utility, kind="stable"):
            if len(order) == k:
                break
            if self.candidates[int(i)] not in taken and self._costs[i] <= left:
                order.append(int(i))
                left -= float(self._costs[i])
        start = len(taken)
        recruits = []
        for rank, i in enumerate(order, start=start + 1):
            reason = f"rank {rank}: tie-break accuracy {tiebreak[i]:.3f} on {basis}"
            if self._costs[i] > 0:
                reason += f", expected cost {self._costs[i]:.6g}"
            recruits.append(
                Recruit(
                    self.candidates[i],
                    float(tiebreak[i]),
                    float(local[i]),
                    float(self.profiles.strength[self._columns[i]]),
                    float(self._costs[i]),
                    reason,
                )
            )
        return tuple(recruits)

    def _order(self, utility: np.ndarray) -> list[int]:
        if self.policy.temperature <= 0:
            # Stable: ties keep the candidates' configured order.
            return [int(i) for i in np.argsort(-utility, kind="stable")]
        logits = (utility - utility.max()) / self.policy.temperature
        weights = np.exp(logits)
        drawn = self._rng.choice(
            len(utility), size=len(utility), replace=False, p=weights / weights.sum()
        )
        return [int(i) for i in drawn]

    def _cheaper_near_tie(self, pick: int, remaining: list[int], local: np.ndarray) -> int:
        floor = local[pick] - self.policy.near_tie
        cheaper = [i for i in remaining if self._costs[i] < self._costs[pick] and local[i] >= floor]
        if not cheaper:
            return pick
        return min(cheaper, key=lambda i: (self._costs[i], -local[i]))


def stage_settled(answers: Sequence[str | None], first_stage: bool) -> bool:
    """Whether a cascade may stop after a stage: the first stage when every answer agrees, a
    later one when one answer leads the vote count by at least one.

    >>> stage_settled(["B", "B"], first_stage=True), stage_settled(["B", "C"], first_stage=True)
    (True, False)
    >>> stage_settled(["B", "C", "B", "D"], first_stage=False)
    True
    """
    given = [answer for answer in answers if answer is not None]
    if first_stage:
        return len(given) == len(answers) >= 1 and len(set(given)) == 1
    counts = sorted(Counter(given).values(), reverse=True)
    return bool(counts) and counts[0] - (counts[1] if len(counts) > 1 else 0) >= 1


def cascade_length(answers: Sequence[str | None], stages: Sequence[int]) -> int:
    """How many of the ranked experts' ``answers`` a staged cascade reads before it settles
    (the rule ``Switch`` applies when it calls them)."""
    for index, end in enumerate(stages):
        if end >= len(answers) or stage_settled(answers[:end], first_stage=index == 0):
            return min(end, len(answers))
    return len(answers)
