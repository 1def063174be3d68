"""Expert profiles (Symbolic-MoE): how good each expert is at each skill, from validation results.

A profile holds, per expert, a *global strength* (its accuracy over all validation questions)
and a *local competence* per skill: its accuracy on the questions of that skill, shrunk toward
its global strength by ``prior`` pseudo-questions so a skill seen ten times does not trust ten
answers. Skills are the router's skill labels (a category per question, or the router's
prediction for the question text) and, when the questions carry them, keywords (the paper's
keyword skills, mapped to a request's keywords by embedding similarity at run time).

With the experts' answers, a profile also holds each expert's *tie-break competence*: its
accuracy on the questions where the first stage of a cascade (the ``first_stage`` best-ranked
experts of the question's skill) disagreed, per skill and overall. Those questions are hard
for the strong experts, and a different set of experts is right on them (on MMLU-Pro the third
and fourth strongest overall are not the best tie-breakers); the recruiter widens a cascade by
this competence (``Recruiter.widen``), and, with ``neighbours``, by the accuracy on the
disagreement questions nearest the request (``router.neighbours``).

>>> profiles = fit_profiles(load_validation("results.csv"))  # doctest: +SKIP
>>> profiles.competence_of("gpt-x", {"math": 1.0})  # doctest: +SKIP
0.81
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.router.neighbours import NEIGHBOURS_FILE, TiebreakNeighbours
from skillswitch.router.validation import ValidationResults

__all__ = [
    "PROFILES_SCHEMA",
    "ExpertProfiles",
    "SkillKind",
    "disagreement_rows",
    "fit_profiles",
    "log_odds",
    "with_neighbours",
]

PROFILES_SCHEMA = "skillswitch.profiles/2"
PROFILES_FILE = "profiles.json"
# Version 1 had no tie-break competence and no neighbours; it still reads (cascades widen by
# the first-stage ranking, as they did).
READABLE_SCHEMAS = ("skillswitch.profiles/1", PROFILES_SCHEMA)

SkillKind = Literal["skill", "keyword"]


@dataclass(frozen=True)
class ExpertProfiles:
    """Global strength and per-skill competence of each expert (all accuracies in [0, 1])."""

    experts: tuple[str, ...]
    skills: tuple[str, ...]
    kinds: tuple[SkillKind, ...]
    strength: np.ndarray
    """(experts,) accuracy over every validation question (smoothed)."""
    competence: np.ndarray
    """(skills, experts) accuracy on the skill's questions, shrunk toward ``strength``."""
    counts: np.ndarray
    """(skills,) validation questions per skill."""
    aggregator: str
    aggregator_reason: str
    prior: float
    questions: int
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    combiner: Mapping[str, Any] | None = None
    """A learned answer combiner (``router.combiner``), fitted when answers were given."""
    tiebreak: np.ndarray | None = None
    """(skills, experts) accuracy on the skill's questions where the first stage disagreed,
    shrunk toward ``tiebreak_strength``; None without answers."""
    tiebreak_strength: np.ndarray | None = None
    """(experts,) accuracy on every question where the first stage disagreed (smoothed)."""
    first_stage: int = 2
    tiebreak_questions: int = 0
    neighbours: TiebreakNeighbours | None = None

    def __post_init__(self) -> None:
        self._expert_index: dict[str, int]
        self._skill_index: dict[str, int]
        object.__setattr__(self, "_expert_index", {e: i for i, e in enumerate(self.experts)})
        object.__setattr__(self, "_skill_index", {s: i for i, s in enumerate(self.skills)})

    # ----------------------------------------------------------------------------- queries
    def has_skill(self, skill: str) -> bool:
        return skill in self._skill_index

    def has_expert(self, expert: str) -> bool:
        return expert in self._expert_index

    @property
    def keywords(self) -> tuple[str, ...]:
        pairs = zip(self.skills, self.kinds, strict=True)
        return tuple(s for s, kind in pairs if kind == "keyword")

    @property
    def skill_labels(self) -> tuple[str, ...]:
        pairs = zip(self.skills, self.kinds, strict=True)
        return tuple(s for s, kind in pairs if kind == "skill")

    def local_competence(self, skill_weights: Mapping[str, float]) -> np.ndarray:
        """(experts,) the weighted mean competence over the given skills; unknown skills are
        ignored and, when none is known, the global strength stands in."""
        return self._weighted(self.competence, self.strength, skill_weights)

    def tiebreak_competence(self, skill_weights: Mapping[str, float]) -> np.ndarray | None:
        """(experts,) the weighted tie-break competence over the given skills (the overall one
        when none is known); None when the profiles have none."""
        if self.tiebreak is None or self.tiebreak_strength is None:
            return None
        return self._weighted(self.tiebreak, self.tiebreak_strength, skill_weights)

    def _weighted(
        self, table: np.ndarray, overall: np.ndarray, skill_weights: Mapping[str, float]
    ) -> np.ndarray:
        """(experts,) the rows of ``table`` (skills x experts) for the known skills, averaged
        by their weights; ``overall`` when no known skill has a positive weight."""
        index = self._skill_index
        known = [(index[s], w) for s, w in skill_weights.items() if s in index]
        total = sum(w for _, w in known if w > 0)
        if not known or total <= 0:
            return overall.copy()
        rows = np.array([i for i, _ in known])
        weights = np.array([max(w, 0.0) for _, w in known]) / total
        return np.asarray(weights @ table[rows], dtype=np.float64)

    def competence_of(self, expert: str, skill_weights: Mapping[str, float]) -> float:
        return float(self.local_competence(skill_weights)[self._expert_index[expert]])

    def strength_of(self, expert: str) -> float:
        return float(self.strength[self._expert_index[expert]])

    def expert_index(self, expert: str) -> int:
        return self._expert_index[expert]

    # ------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILES_SCHEMA,
            "source": self.source,
            "questions": self.questions,
            "prior": self.prior,
            "aggregator": {"expert": self.aggregator, "reason": self.aggregator_reason},
            "experts": [
                {"name": e, "strength": round(float(self.strength[i]), 6)}
                for i, e in enumerate(self.experts)
            ],
            "skills": [
                {
                    "name": s,
                    "kind": kind,
                    "questions": int(self.counts[i]),
                    "competence": [round(float(v), 6) for v in self.competence[i]],
                    **(
                        {"tiebreak": [round(float(v), 6) for v in self.tiebreak[i]]}
                        if self.tiebreak is not None
                        else {}
                    ),
                }
                for i, (s, kind) in enumerate(zip(self.skills, self.kinds, strict=True))
            ],
            "metadata": dict(self.metadata),
            "combiner": None if self.combiner is None else dict(self.combiner),
            "tiebreak": None
            if self.tiebreak_strength is None
            else {
                "first_stage": self.first_stage,
                "questions": self.tiebreak_questions,
                "strength": [round(float(v), 6) for v in self.tiebreak_strength],
            },
            "neighbours": None if self.neighbours is None else self.neighbours.describe(),
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``profiles.json`` (and ``neighbours.npz`` when there are neighbours)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        path = out / PROFILES_FILE
        if self.neighbours is not None:
            self.neighbours.save(out / NEIGHBOURS_FILE)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ExpertProfiles:
        """Read profiles written by :meth:`save` (``folder`` or the profiles.json inside it)."""
        location = Path(folder)
        path = location / PROFILES_FILE if location.is_dir() else location
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(
                f"no expert profiles at {str(path)!r}; build them with "
                "`skillswitch fit profiles --results FILE --out DIR`"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: not a profiles file ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ArtifactError(
                f"{path}: schema {found!r} is not {PROFILES_SCHEMA!r}; rebuild it with "
                "`skillswitch fit profiles`"
            )
        try:
            experts = tuple(str(e["name"]) for e in data["experts"])
            skills = data["skills"]
            kinds: tuple[SkillKind, ...] = tuple(
                "keyword" if s["kind"] == "keyword" else "skill" for s in skills
            )
            competence = np.array([s["competence"] for s in skills], dtype=np.float64)
            if competence.size and competence.shape != (len(skills), len(experts)):
                raise ValueError(f"competence shape {competence.shape}")
            tiebreak, tiebreak_strength, first_stage, tiebreak_questions = _read_tiebreak(
                data, skills, len(experts)
            )
            neighbours = None
            if data.get("neighbours"):
                neighbours = TiebreakNeighbours.load(
                    path.parent / NEIGHBOURS_FILE, experts, data["neighbours"]
                )
            return cls(
                experts,
                tuple(str(s["name"]) for s in skills),
                kinds,
                np.array([e["strength"] for e in data["experts"]], dtype=np.float64),
                competence.reshape(len(skills), len(experts)),
                np.array([s["questions"] for s in skills], dtype=np.int64),
                str(data["aggregator"]["expert"]),
                str(data["aggregator"]["reason"]),
                float(data["prior"]),
                int(data["questions"]),
                str(data.get("source", "")),
                dict(data.get("metadata") or {}),
                data.get("combiner"),
                tiebreak,
                tiebreak_strength,
                first_stage,
                tiebreak_questions,
                neighbours,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: incomplete profiles ({exc!r}); rebuild them") from None


def _read_tiebreak(
    data: Mapping[str, Any], skills: Sequence[Mapping[str, Any]], experts: int
) -> tuple[np.ndarray | None, np.ndarray | None, int, int]:
    block = data.get("tiebreak")
    if not block:
        return None, None, 2, 0
    strength = np.array(block["strength"], dtype=np.float64)
    rows = np.array([s["tiebreak"] for s in skills], dtype=np.float64)
    if strength.shape != (experts,) or (rows.size and rows.shape != (len(skills), experts)):
        raise ValueError(f"tie-break shape {rows.shape} for {experts} experts")
    return (
        rows.reshape(len(skills), experts),
        strength,
        int(block["first_stage"]),
        int(block["questions"]),
    )


def fit_profiles(
    results: ValidationResults,
    *,
    prior: float = 10.0,
    min_keyword_questions: int = 3,
    aggregator_results: ValidationResults | None = None,
    first_stage: int = 2,
    tiebreak_prior: float = 20.0,
) -> ExpertProfiles:
    """Profiles from validation results.

    ``prior``: pseudo-questions at the expert's global strength added to every skill (shrinkage).
    ``first_stage``, ``tiebreak_prior``: with answers, the tie-break competence is measured on
    the questions where the ``first_stage`` best-ranked experts of the skill disagreed, shrunk
    toward the overall tie-break accuracy by ``tiebreak_prior`` pseudo-questions.
    ``min_keyword_questions``: keywords seen on fewer questions get no profile entry.
    ``aggregator_results``: per-question correctness of each candidate *acting as aggregator*
    (same layout); when given, the aggregator is the best of them, else the globally strongest
    expert (the paper found the strongest reasoner to be the best synthesiser).
    """
    if prior < 0:
        raise ValueError(f"prior must be >= 0, got {prior}")
    if len(results) == 0:
        raise DatasetError(f"{results.source}: no questions to build profiles from")
    # No output counts as a wrong answer: a recruited expert that says nothing does not help.
    correct = np.nan_to_num(results.correct, nan=0.0)
    n, experts = correct.shape
    strength = (correct.sum(0) + 1.0) / (n + 2.0)

    groups: dict[tuple[str, SkillKind], list[int]] = defaultdict(list)
    for row, skill in enumerate(results.skills):
        if skill is not None:
            groups[skill, "skill"].append(row)
    for row, words in enumerate(results.keywords()):
        for word in set(words):
            groups[word, "keyword"].append(row)
    groups = {
        key: rows
        for key, rows in groups.items()
        if key[1] == "skill" or len(rows) >= min_keyword_questions
    }
    names: list[str] = []
    kinds: list[SkillKind] = []
    competence = np.zeros((len(groups), experts))
    counts = np.zeros(len(groups), dtype=np.int64)
    # Skills first, then keywords, each alphabetically: a stable file for the same data.
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][1] != "skill", kv[0][0]))
    for i, ((name, kind), rows) in enumerate(ordered):
        names.append(name)
        kinds.append(kind)
        counts[i] = len(rows)
        competence[i] = (correct[rows].sum(0) + prior * strength) / (len(rows) + prior)

    aggregator, reason = _choose_aggregator(results.experts, strength, aggregator_results)
    tiebreak: np.ndarray | None = None
    tiebreak_strength: np.ndarray | None = None
    disagreed = np.zeros(0, dtype=np.int64)
    if results.answers is not None:
        if first_stage < 1 or tiebreak_prior < 0:
            raise ValueError("first_stage must be >= 1 and tiebreak_prior >= 0")
        top = np.argsort(-(competence * strength), axis=1, kind="stable")[:, :first_stage]
        overall = np.argsort(-strength, kind="stable")[:first_stage]
        label_row = {name: i for i, ((name, kind), _) in enumerate(ordered) if kind == "skill"}
        first = [
            top[label_row[skill]] if skill in label_row else overall for skill in results.skills
        ]
        disagreed = np.array(
            [row for row in range(n) if not _first_stage_agrees(results.answers[row], first[row])],
            dtype=np.int64,
        )
        tiebreak_strength = (correct[disagreed].sum(0) + 1.0) / (len(disagreed) + 2.0)
        tiebreak = np.zeros_like(competence)
        for i, (_key, rows) in enumerate(ordered):
            hard = [r for r in rows if not _first_stage_agrees(results.answers[r], top[i])]
            tiebreak[i] = (correct[hard].sum(0) + tiebreak_prior * tiebreak_strength) / (
                len(hard) + tiebreak_prior
            )
    return ExpertProfiles(
        results.experts,
        tuple(names),
        tuple(kinds),
        strength,
        competence,
        counts,
        aggregator,
        reason,
        prior,
        n,
        results.source,
        tiebreak=tiebreak,
        tiebreak_strength=tiebreak_strength,
        first_stage=first_stage,
        tiebreak_questions=len(disagreed),
    )


def disagreement_rows(profiles: ExpertProfiles, results: ValidationResults) -> np.ndarray:
    """Rows of ``results`` where the first stage of the question's skill disagreed."""
    if results.answers is None:
        raise ValueError("disagreements need each expert's answers (the predictions file)")
    columns = np.array([results.experts.index(e) for e in profiles.experts])
    score = profiles.competence * profiles.strength
    top = np.argsort(-score, axis=1, kind="stable")[:, : profiles.first_stage]
    overall = np.argsort(-profiles.strength, kind="stable")[: profiles.first_stage]
    rows = []
    for row, skill in enumerate(results.skills):
        first = (
            top[profiles.skills.index(skill)] if skill and profiles.has_skill(skill) else overall
        )
        if not _first_stage_agrees(results.answers[row], columns[first]):
            rows.append(row)
    return np.array(rows, dtype=np.int64)


def with_neighbours(
    profiles: ExpertProfiles,
    results: ValidationResults,
    vectors: np.ndarray,
    encoder: str,
    *,
    encoder_name: str = "",
    k: int = 50,
    prior: float = 20.0,
) -> ExpertProfiles:
    """``profiles`` with the questions of ``results`` where the first stage disagreed, embedded
    (``vectors``, one row per question of ``results``, by the encoder whose identity is
    ``encoder``), as tie-break neighbours."""
    if profiles.tiebreak is None:
        raise ValueError("neighbours need tie-break competence: fit the profiles with answers")
    rows = disagreement_rows(profiles, results)
    columns = np.array([results.experts.index(e) for e in profiles.experts], dtype=np.int64)
    neighbours = TiebreakNeighbours.build(
        [results.question_ids[r] for r in rows],
        np.asarray(vectors)[rows],
        results.correct[np.ix_(rows, columns)],
        profiles.experts,
        encoder,
        encoder_name=encoder_name,
        k=k,
        prior=prior,
    )
    return replace(profiles, neighbours=neighbours)


def _first_stage_agrees(answers: Sequence[str], first: np.ndarray) -> bool:
    given = [answers[int(j)] for j in first]
    return all(given) and len(set(given)) == 1


def _choose_aggregator(
    experts: Sequence[str], strength: np.ndarray, aggregator_results: ValidationResults | None
) -> tuple[str, str]:
    if aggregator_results is None:
        best = int(np.argmax(strength))
        return experts[best], (
            f"highest validation accuracy ({strength[best]:.3f}); no aggregation results given"
        )
    scores = np.nan_to_num(aggregator_results.correct, nan=0.0).mean(0)
    best = int(np.argmax(scores))
    return aggregator_results.experts[best], (
        f"best aggregator on {len(aggregator_results)} validation questions "
        f"(accuracy {scores[best]:.3f} when synthesising)"
    )


def log_odds(p: np.ndarray | float, options: int = 2) -> np.ndarray:
    """Weighted-majority vote weight of an expert with accuracy ``p`` among ``options``
    answers: log(p (options - 1) / (1 - p)) -- the optimal weight under symmetric errors."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-3, 1 - 1e-3)
    return np.asarray(np.log(q * max(options - 1, 1) / (1 - q)), dtype=np.float64)
