"""A learned answer combiner: which of the experts' answers to trust, fitted on validation data.

Each distinct answer among the called experts is a candidate, described by who gave it (one flag
per profiled expert), how many gave it and what share, the sum of their competence log-odds on
the request's skills, the best competence among them, and whether the most competent called
expert gave it, and (when the validation answers come from a small set such as option
letters) which answer it is: on MMLU-Pro the experts' errors are not spread evenly over the
letters, and a candidate's letter shifts its odds. A logistic model, fitted on validation
questions with the called sets the cascade produces there, scores the candidates; the
best-scoring answer wins. It learns what a fixed weighted vote cannot: which experts' agreement
is worth more than their accuracies say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skillswitch.router.logistic import fit_logistic
from skillswitch.router.profiles import ExpertProfiles, log_odds
from skillswitch.router.recruitment import (
    Recruiter,
    RecruitmentPolicy,
    cascade_length,
    stage_settled,
)
from skillswitch.router.validation import ValidationResults

__all__ = ["AnswerCombiner", "CombinerExample", "combiner_examples", "fit_combiner"]

EXTRA_FEATURES = ("count", "share", "sum_log_odds", "best_competence", "most_competent_agrees")
# Answers get a flag each when the validation answers come from at most this many values.
MAX_ANSWER_FLAGS = 26


@dataclass(frozen=True, slots=True)
class CombinerExample:
    """One validation question: each called expert's answer (None: none extracted), their
    competence on the question's skills, and the answers graded correct."""

    answers: Mapping[str, str | None]
    competence: Mapping[str, float]
    correct: frozenset[str]


@dataclass(frozen=True)
class AnswerCombiner:
    experts: tuple[str, ...]
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    answers: tuple[str, ...] = ()
    """Answers with a flag of their own (e.g. the option letters); empty: none."""

    def scores(
        self, answers: Mapping[str, str | None], competence: Mapping[str, float]
    ) -> dict[str, float]:
        """{candidate answer: score} (higher is more likely right)."""
        candidates, features = _features(self.experts, answers, competence, self.answers)
        if not candidates:
            return {}
        z = (features - self.mean) / self.scale
        values = z @ self.coef + self.intercept
        return {c: float(v) for c, v in zip(candidates, values, strict=True)}

    def choose(
        self, answers: Mapping[str, str | None], competence: Mapping[str, float]
    ) -> str | None:
        scored = self.scores(answers, competence)
        return max(scored, key=lambda c: scored[c]) if scored else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [
                *(f"voted:{e}" for e in self.experts),
                *EXTRA_FEATURES,
                *(f"answer:{a}" for a in self.answers),
            ],
            "answers": list(self.answers),
            "coef": [round(float(v), 6) for v in self.coef],
            "intercept": round(self.intercept, 6),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
        }

    @classmethod
    def from_dict(cls, experts: Sequence[str], data: Mapping[str, Any]) -> AnswerCombiner:
        coef = np.array(data["coef"], dtype=np.float64)
        flagged = tuple(str(a) for a in data.get("answers") or ())  # absent before flags
        if len(coef) != len(experts) + len(EXTRA_FEATURES) + len(flagged):
            raise ValueError(f"combiner has {len(coef)} weights for {len(experts)} experts")
        return cls(
            tuple(experts),
            coef,
            float(data["intercept"]),
            np.array(data["mean"], dtype=np.float64),
            np.array(data["scale"], dtype=np.float64),
            flagged,
        )


def _features(
    experts: Sequence[str],
    answers: Mapping[str, str | None],
    competence: Mapping[str, float],
    flagged: Sequence[str] = (),
) -> tuple[list[str], np.ndarray]:
    given = {e: a for e, a in answers.items() if a is not None}
    candidates = list(dict.fromkeys(given.values()))
    width = len(experts) + len(EXTRA_FEATURES) + len(flagged)
    if not candidates:
        return [], np.zeros((0, width))
    index = {e: i for i, e in enumerate(experts)}
    flag = {a: len(experts) + len(EXTRA_FEATURES) + i for i, a in enumerate(flagged)}
    called = list(answers)
    strongest = max(called, key=lambda e: competence.get(e, 0.0))
    rows = np.zeros((len(candidates), width))
    for row, candidate in enumerate(candidates):
        voters = [e for e, a in given.items() if a == candidate]
        for expert in voters:
            if expert in index:
                rows[row, index[expert]] = 1.0
        comps = [competence.get(e, 0.0) for e in voters]
        if candidate in flag:
            rows[row, flag[candidate]] = 1.0
        rows[row, len(experts) : len(experts) + len(EXTRA_FEATURES)] = (
            len(voters),
            len(voters) / len(called),
            float(np.sum(log_odds(np.array(comps)))),
            max(comps),
            float(given.get(strongest) == candidate),
        )
    return candidates, rows


def fit_combiner(
    experts: Sequence[str],
    examples: Sequence[CombinerExample],
    *,
    l2: float = 1.0,
    answer_flags: bool = True,
) -> AnswerCombiner:
    """Logistic regression (Newton's method, L2 on the weights) over every candidate answer.
    ``answer_flags``: a flag per answer when the answers come from a small set."""
    flagged = _answer_vocabulary(examples) if answer_flags else ()
    blocks: list[np.ndarray] = []
    targets: list[float] = []
    for example in examples:
        candidates, features = _features(experts, example.answers, example.competence, flagged)
        if len(candidates) < 2:
            continue  # agreement or nothing: no choice to learn from
        blocks.append(features)
        targets.extend(float(c in example.correct) for c in candidates)
    if not blocks:
        raise ValueError("no validation question had two different answers to learn from")
    fit = fit_logistic(np.vstack(blocks), np.array(targets), l2=l2)
    return AnswerCombiner(tuple(experts), fit.coef, fit.intercept, fit.mean, fit.scale, flagged)


def _answer_vocabulary(examples: Sequence[CombinerExample]) -> tuple[str, ...]:
    """The answers the experts give, when they come from a small set (option letters)."""
    seen = {a for e in examples for a in e.answers.values() if a is not None}
    return tuple(sorted(seen)) if len(seen) <= MAX_ANSWER_FLAGS else ()


def combiner_examples(
    profiles: ExpertProfiles,
    results: ValidationResults,
    stages: Sequence[int],
    skill_weights: Sequence[Mapping[str, float]] | None = None,
    *,
    vectors: np.ndarray | None = None,
    own_questions: bool = False,
) -> list[CombinerExample]:
    """Questions as the combiner sees them at run time: the experts recruited for each
    question's skills (``skill_weights``, e.g. the router's scores; default its labelled skill),
    widened by tie-break competence when the first stage disagrees (on the question's nearest
    neighbours when ``vectors``, its embeddings, are given), as many as the cascade ``stages``
    would ask. ``own_questions``: the profiles were fitted on ``results``, so each question is
    kept out of its own neighbours."""
    if results.answers is None:
        raise ValueError("a combiner needs each expert's answers (the predictions file)")
    recruiter = Recruiter(profiles, RecruitmentPolicy(k=stages[-1]), available=results.experts)
    column = {name: j for j, name in enumerate(results.experts)}
    examples = []
    for row, skill in enumerate(results.skills):
        if skill_weights is not None:
            weights = skill_weights[row]
        else:
            weights = {skill: 1.0} if skill is not None else {}
        given = results.answers[row]
        recruits = recruiter.recruit(weights)
        first = recruits[: stages[0]]
        opening = [given[column[r.expert]] or None for r in first]
        if len(recruits) > len(first) and not stage_settled(opening, first_stage=True):
            recruits = first + recruiter.widen(
                weights,
                [r.expert for r in first],
                k=len(recruits) - len(first),
                vector=None if vectors is None else vectors[row],
                exclude=results.question_ids[row] if own_questions else None,
            )
        answers = [given[column[r.expert]] or None for r in recruits]
        called = recruits[: cascade_length(answers, stages)]
        right = frozenset(
            given[column[r.expert]]
            for r in called
            if results.correct[row, column[r.expert]] == 1.0 and given[column[r.expert]]
        )
        examples.append(
            CombinerExample(
                {r.expert: given[column[r.expert]] or None for r in called},
                {r.expert: r.competence for r in called},
                right,
            )
        )
    return examples
