"""Validation results -> expert profiles -> recruitment, on small hand-checked data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.router.profiles import ExpertProfiles, fit_profiles, log_odds
from skillswitch.router.recruitment import Recruiter, RecruitmentPolicy
from skillswitch.router.validation import load_validation

WIDE = """question_id,category,src,alpha,beta,gamma
1,math,x,1,0,1
2,math,x,1,0,0
3,math,x,1,1,
4,law,y,0,1,1
5,law,y,0,1,0
6,law,y,1,1,0
"""


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    path = tmp_path / "results.csv"
    path.write_text(WIDE, encoding="utf-8")
    return path


def test_wide_csv_reads_experts_categories_and_blanks(wide: Path) -> None:
    data = load_validation(wide)
    assert data.experts == ("alpha", "beta", "gamma")  # src is metadata, not an expert
    assert data.skills == ("math",) * 3 + ("law",) * 3
    assert math.isnan(data.correct[2, 2])
    assert data.correct[:, 0].tolist() == [1, 1, 1, 0, 0, 1]


def test_profiles_shrink_skill_accuracy_toward_global_strength(wide: Path) -> None:
    profiles = fit_profiles(load_validation(wide), prior=2.0)
    alpha = profiles.expert_index("alpha")
    strength = (4 + 1) / (6 + 2)  # Laplace-smoothed global accuracy
    assert profiles.strength[alpha] == pytest.approx(strength)
    math_row = profiles.skills.index("math")
    # 3 of 3 on math, plus 2 pseudo-questions at the global strength.
    assert profiles.competence[math_row, alpha] == pytest.approx((3 + 2 * strength) / 5)
    # No output (blank) counts as wrong.
    gamma = profiles.expert_index("gamma")
    assert profiles.competence[math_row, gamma] == pytest.approx(
        (1 + 2 * profiles.strength[gamma]) / 5
    )
    assert profiles.aggregator == profiles.experts[int(np.argmax(profiles.strength))]


def test_profiles_round_trip_and_reject_foreign_files(wide: Path, tmp_path: Path) -> None:
    profiles = fit_profiles(load_validation(wide))
    folder = tmp_path / "profiles"
    profiles.save(folder)
    again = ExpertProfiles.load(folder)
    assert again.experts == profiles.experts
    assert again.skills == profiles.skills
    np.testing.assert_allclose(again.competence, profiles.competence, atol=1e-6)
    assert again.aggregator == profiles.aggregator
    (tmp_path / "other.json").write_text(json.dumps({"schema": "x"}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="schema 'x'"):
        ExpertProfiles.load(tmp_path / "other.json")
    with pytest.raises(ArtifactError, match="fit profiles"):
        ExpertProfiles.load(tmp_path / "missing")


def test_recruits_by_local_competence_times_strength(wide: Path) -> None:
    profiles = fit_profiles(load_validation(wide), prior=1.0)
    recruiter = Recruiter(profiles, RecruitmentPolicy(k=2))
    on_math = [r.expert for r in recruiter.recruit({"math": 0.9})]
    on_law = [r.expert for r in recruiter.recruit({"law": 0.9})]
    assert on_math[0] == "alpha"
    assert on_law[0] == "beta"
    first = recruiter.recruit({"law": 0.9})[0]
    assert first.score == pytest.approx(first.competence * first.strength)
    assert "competence" in first.reason
    assert "law" in first.reason
    # An unknown skill falls back to global strength.
    fallback = recruiter.recruit({"poetry": 1.0})
    assert "global strength" in fallback[0].reason


def test_budget_near_tie_and_cost_weight(wide: Path) -> None:
    profiles = fit_profiles(load_validation(wide), prior=1.0)
    costs = {"alpha": 1.0, "beta": 0.1, "gamma": 0.01}
    limited = Recruiter(profiles, RecruitmentPolicy(k=3, budget=0.2), costs=costs)
    assert [r.expert for r in limited.recruit({"math": 1.0})] == ["beta", "gamma"]
    broke = Recruiter(profiles, RecruitmentPolicy(k=3, budget=0.001), costs=costs)
    (only,) = broke.recruit({"math": 1.0})
    assert only.expert == "gamma"
    assert "over the budget" in only.reason
    cheap = Recruiter(profiles, RecruitmentPolicy(k=1, near_tie=1.0), costs=costs)
    assert cheap.recruit({"math": 1.0})[0].expert == "gamma"
    strict = Recruiter(profiles, RecruitmentPolicy(k=1, near_tie=0.0), costs=costs)
    assert strict.recruit({"math": 1.0})[0].expert == "alpha"
    traded = Recruiter(profiles, RecruitmentPolicy(k=1, cost_weight=10.0), costs=costs)
    assert traded.recruit({"math": 1.0})[0].expert == "gamma"


def test_temperature_draws_are_seeded(wide: Path) -> None:
    profiles = fit_profiles(load_validation(wide))
    draws = [
        tuple(
            r.expert
            for r in Recruiter(profiles, RecruitmentPolicy(k=2, temperature=5.0, seed=7)).recruit(
                {"math": 1.0}
            )
        )
        for _ in range(3)
    ]
    assert len(set(draws)) == 1
    many = Recruiter(profiles, RecruitmentPolicy(k=1, temperature=5.0, seed=1))
    assert len({many.recruit({"math": 1.0})[0].expert for _ in range(60)}) > 1


def test_available_experts_limit_candidates(wide: Path) -> None:
    profiles = fit_profiles(load_validation(wide))
    recruiter = Recruiter(profiles, available=["gamma", "unknown"])
    assert recruiter.unprofiled == ("unknown",)
    assert [r.expert for r in recruiter.recruit({"math": 1.0})] == ["gamma"]
    with pytest.raises(ValueError, match="no recruitable expert"):
        Recruiter(profiles, available=["nobody"])


def test_long_jsonl_with_answers_and_keywords(tmp_path: Path) -> None:
    rows = [
        {"question_id": q, "expert": e, "correct": c, "answer": a}
        for q, e, c, a in [
            ("q1", "a", 1, "B"),
            ("q1", "b", 0, "C"),
            ("q2", "a", 0, "A"),
            ("q2", "b", None, ""),
            ("q3", "a", 1, "D"),
            ("q3", "b", 1, "D"),
        ]
    ]
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps({"question_id": q, "question": f"text {q}", "category": "c", "keywords": k})
            for q, k in [("q1", ["Algebra"]), ("q2", ["algebra", "logic"]), ("q3", ["algebra"])]
        ),
        encoding="utf-8",
    )
    data = load_validation(results, questions=questions)
    assert data.answers == (("B", "C"), ("A", ""), ("D", "D"))
    assert data.texts()[0] == "text q1"
    assert data.skills == ("c", "c", "c")
    profiles = fit_profiles(data, min_keyword_questions=3)
    assert profiles.keywords == ("algebra",)  # "logic" appears on one question only
    assert profiles.skill_labels == ("c",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id_missing,alpha\n1,1\n", "no question id column"),
        ("question_id\n1\n", "no expert columns"),
        ("question_id,alpha\n1,yes\n", "'yes' is not a result"),
        ("question_id,alpha\n1,1\n1,0\n", "repeats line 2"),
        ("question_id,alpha\n", "no result rows"),
    ],
)
def test_bad_results_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_validation(path)


def test_bad_paths_and_formats(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_validation(tmp_path / "nope.csv")
    odd = tmp_path / "results.txt"
    odd.write_text("x", encoding="utf-8")
    with pytest.raises(DatasetError, match="unknown format"):
        load_validation(odd)
    broken = tmp_path / "results.jsonl"
    broken.write_text('{"question_id": 1, "expert": "a", "correct": 2}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="'correct' is 2"):
        load_validation(broken)


def test_log_odds_weights() -> None:
    assert log_odds(0.5) == pytest.approx(0.0)
    assert log_odds(0.5, options=4) == pytest.approx(math.log(3))
    assert np.isfinite(log_odds(1.0))
    assert np.isfinite(log_odds(0.0))


def test_jsonl_records_may_contain_unicode_line_separators(tmp_path: Path, wide: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    record = {"question_id": "1", "question": "roles\u2028and\u0085rules", "category": "math"}
    questions.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    data = load_validation(wide, questions=questions)
    assert data.texts()[0] == "roles\u2028and\u0085rules"


def test_learned_combiner_learns_whose_agreement_counts() -> None:
    from skillswitch.router.combiner import AnswerCombiner, CombinerExample, fit_combiner

    # "loud" has the best accuracy on paper, but when "quiet" and "sage" agree against it they
    # are right; a fixed competence vote keeps siding with "loud".
    experts = ("loud", "quiet", "sage")
    competence = {"loud": 0.8, "quiet": 0.4, "sage": 0.4}
    examples = [
        CombinerExample({"loud": "A", "quiet": "B", "sage": "B"}, competence, frozenset({"B"})),
        CombinerExample({"loud": "A", "quiet": "B", "sage": "C"}, competence, frozenset({"A"})),
    ] * 40
    combiner = fit_combiner(experts, examples)
    assert combiner.choose({"loud": "A", "quiet": "B", "sage": "B"}, competence) == "B"
    assert combiner.choose({"loud": "A", "quiet": "B", "sage": "C"}, competence) == "A"
    assert combiner.choose({"loud": None, "quiet": None, "sage": None}, competence) is None
    again = AnswerCombiner.from_dict(experts, combiner.to_dict())
    assert again.choose({"loud": "A", "quiet": "B", "sage": "B"}, competence) == "B"
    with pytest.raises(ValueError, match="no validation question had two different answers"):
        fit_combiner(experts, [examples[0].__class__({"loud": "A"}, competence, frozenset())])


def test_cascade_length_follows_the_switch_rule() -> None:
    from skillswitch.router.recruitment import cascade_length

    assert cascade_length(["A", "A", "B", "B", "C"], (2, 4, 5)) == 2
    assert cascade_length(["A", "B", "B", "C", "D"], (2, 4, 5)) == 4
    assert cascade_length(["A", "B", "B", "A", "D"], (2, 4, 5)) == 5
    assert cascade_length(["A", None, "A"], (2, 3)) == 3


def test_combiner_flags_answers_from_a_small_set_and_reads_older_combiners() -> None:
    from skillswitch.router.combiner import AnswerCombiner, CombinerExample, fit_combiner

    # Two equal experts split; the truth is "A" more often than "B": the flag learns it.
    experts = ("one", "two")
    competence = {"one": 0.6, "two": 0.6}
    examples = [
        CombinerExample({"one": "A", "two": "B"}, competence, frozenset({"A"})),
        CombinerExample({"one": "B", "two": "A"}, competence, frozenset({"A"})),
        CombinerExample({"one": "A", "two": "B"}, competence, frozenset({"B"})),
    ] * 20
    combiner = fit_combiner(experts, examples)
    assert combiner.answers == ("A", "B")
    assert combiner.choose({"one": "B", "two": "A"}, competence) == "A"
    stored = combiner.to_dict()
    assert stored["features"][-2:] == ["answer:A", "answer:B"]
    unflagged = fit_combiner(experts, examples, answer_flags=False).to_dict()
    del unflagged["answers"]  # as schema 1 profiles stored it
    assert AnswerCombiner.from_dict(experts, unflagged).answers == ()


def test_tiebreak_competence_and_neighbours_leave_a_question_out(tmp_path: Path) -> None:
    from skillswitch.router.neighbours import TiebreakNeighbours

    results = tmp_path / "results.csv"
    results.write_text(
        "question_id,category,a,b,c\n1,math,1,0,1\n2,math,1,0,0\n3,math,1,1,0\n", encoding="utf-8"
    )
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("question_id,a,b,c\n1,A,B,A\n2,A,C,B\n3,A,A,B\n", encoding="utf-8")
    data = load_validation(results, predictions=predictions)
    profiles = fit_profiles(data, prior=0.0, tiebreak_prior=0.0)
    assert profiles.tiebreak is not None
    # First stage a, b; they disagree on questions 1 and 2, where c is right once.
    assert profiles.tiebreak[0].tolist() == [1.0, 0.0, 0.5]
    recruiter = Recruiter(profiles, RecruitmentPolicy(k=3))
    assert [r.expert for r in recruiter.widen({"math": 1.0}, ["a", "b"], k=1)] == ["c"]
    vectors = np.eye(3, dtype=np.float32)
    near = TiebreakNeighbours.build(
        ["1", "2"], vectors[:2], data.correct[:2], data.experts, "e", prior=0.0
    )
    base = np.full(3, 0.25)
    assert near.competence(vectors[0], base).tolist() == pytest.approx([1.0, 0.0, 1.0])
    # Left out, question 1's only neighbour is orthogonal (weight 0): the skill level stands.
    assert near.competence(vectors[0], base, exclude="1").tolist() == pytest.approx([0.25] * 3)
    near.save(tmp_path / "n.npz")
    again = TiebreakNeighbours.load(tmp_path / "n.npz", data.experts, near.describe())
    assert again.question_ids == ("1", "2")
