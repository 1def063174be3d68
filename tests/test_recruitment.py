"""Switch with profile-based recruitment: profiles from validation results choose the experts,
cascades widen only on disagreement, votes weigh answers by competence, and a keyword
extractor can supply the skills (the Symbolic-MoE path)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillswitch.agents import FunctionExpert, Message, TestExpert
from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError
from skillswitch.router.profiles import fit_profiles
from skillswitch.router.validation import load_validation
from skillswitch.switch import Switch
from tests.support.cli import run
from tests.support.configs import DEFAULT_SKILLS

pytestmark = pytest.mark.anyio
EXPERTS = ("algebraist", "linguist", "allrounder", "judge")
# math: algebraist 9/10, allrounder 6/10, linguist 2/10; translation: linguist 9/10, ...
RESULTS = {
    "math": {"algebraist": 9, "linguist": 2, "allrounder": 6, "judge": 5},
    "translation": {"algebraist": 1, "linguist": 9, "allrounder": 7, "judge": 5},
}


def write_results(folder: Path, keywords: bool = False) -> tuple[Path, Path]:
    lines = ["question_id,category," + ",".join(EXPERTS)]
    questions = []
    for skill, scores in RESULTS.items():
        for i in range(10):
            qid = f"{skill}-{i}"
            lines.append(f"{qid},{skill}," + ",".join(str(int(i < scores[e])) for e in EXPERTS))
            words = ["algebra"] if skill == "math" else ["french"]
            questions.append({"question_id": qid, "question": qid, "keywords": words})
    results = folder / "results.csv"
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    question_file = folder / "questions.jsonl"
    question_file.write_text("\n".join(json.dumps(q) for q in questions), encoding="utf-8")
    return results, question_file


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    results, questions = write_results(tmp_path)
    fit_profiles(load_validation(results, questions=questions), prior=2.0).save(tmp_path / "p")
    return tmp_path / "p"


def make(
    cache_root: Path, profiles: Path, recruitment: str = "", dispatch: str = "", **fakes: Any
) -> Switch:
    experts = "\n".join(
        f"  - {{name: {name}, base_url: 'http://127.0.0.1:9/v1', model: m}}" for name in EXPERTS
    )
    text = (
        DEFAULT_SKILLS
        + f"\nexperts:\n{experts}\n"
        + f"recruitment: {{profiles: '{profiles}', {recruitment}}}\n"
        + f"dispatch: {{answer_rule: last_number, {dispatch}}}\n"
    )
    overrides = {name: fakes.get(name, TestExpert(name, reply="0")) for name in EXPERTS}
    return Switch.from_config(parse_config(text), overrides=overrides, cache_dir=cache_root)


async def test_profiles_recruit_per_skill(cache_root: Path, profiles_dir: Path) -> None:
    switch = make(cache_root, profiles_dir, "k: 2", "aggregator: judge")
    math_pick = [s.expert for s in switch.select(switch.route("what is 17 times 23"))]
    words_pick = [s.expert for s in switch.select(switch.route("translate good night to french"))]
    assert math_pick == ["algebraist", "allrounder"]
    assert words_pick == ["linguist", "allrounder"]
    selection = switch.select(switch.route("what is 17 times 23"))[0]
    assert selection.skill == "math"
    assert "competence" in selection.reason


async def test_cascade_asks_the_third_only_on_disagreement(
    cache_root: Path, profiles_dir: Path
) -> None:
    third = TestExpert("linguist", reply="391")
    switch = make(
        cache_root,
        profiles_dir,
        "k: 3, cascade: true",
        algebraist=TestExpert("algebraist", reply="391"),
        allrounder=TestExpert("allrounder", reply="the product is 391"),
        linguist=third,
    )
    async with switch:
        agreed = await switch.run("what is 17 times 23")
    assert third.calls == []
    trace = agreed.trace.to_dict()
    assert trace["aggregation"]["mode"] == "agreement"
    assert trace["recruitment"]["stages"] == [["algebraist", "allrounder"]]
    assert len(trace["results"]) == 2

    split = make(
        cache_root,
        profiles_dir,
        "k: 3, cascade: true",
        "combine: vote",
        algebraist=TestExpert("algebraist", reply="391"),
        allrounder=TestExpert("allrounder", reply="401"),
        judge=TestExpert("judge", reply="401"),
    )
    async with split:
        voted = await split.run("what is 17 times 23")
    trace = voted.trace.to_dict()
    assert trace["recruitment"]["stages"] == [["algebraist", "allrounder"], ["judge"]]
    assert [r["expert"] for r in trace["results"]] == ["algebraist", "allrounder", "judge"]
    assert trace["aggregation"]["mode"] == "voted"
    # algebraist (competence 0.84 on math, weight 2.76) outweighs allrounder (0.61, 1.55)
    # + judge (0.5, 1.10).
    assert voted.text == "391"
    starts = [r["attempts"][0]["started_ms"] for r in trace["results"]]
    assert starts[2] >= starts[0]


async def test_profile_aggregator_synthesises_when_none_is_configured(
    cache_root: Path, profiles_dir: Path
) -> None:
    seen: list[Sequence[Message]] = []

    def synthesise(messages: Sequence[Message]) -> str:
        seen.append(messages)
        return "about 400" if len(seen) == 1 else "391, on reflection"

    # The profiles chose the strongest expert on validation (allrounder: 13/20) as aggregator.
    switch = make(
        cache_root,
        profiles_dir,
        "k: 2",
        algebraist=TestExpert("algebraist", reply="391"),
        allrounder=FunctionExpert("allrounder", synthesise),
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    assert answer.trace.aggregation is not None
    assert answer.trace.aggregation.mode == "synthesised"
    assert len(seen) == 2  # once as an expert, once as the aggregator
    assert answer.text == "391, on reflection"
    assert "about 400" in seen[1][1].content


async def test_keyword_extractor_supplies_the_skills(cache_root: Path, tmp_path: Path) -> None:
    results, questions = write_results(tmp_path)
    fit_profiles(load_validation(results, questions=questions), prior=2.0).save(tmp_path / "kw")
    extractor = FunctionExpert("judge", lambda messages: '["French", "translation"]')
    switch = make(
        cache_root,
        tmp_path / "kw",
        "k: 1, keyword_expert: judge, keyword_samples: 3",
        judge=extractor,
    )
    async with switch:
        # The router says math; the extractor's keywords say french -> the linguist.
        answer = await switch.run("what is 17 times 23")
    basis = answer.trace.to_dict()["recruitment"]
    assert basis["source"] == "keywords"
    assert set(basis["weights"]) == {"french"}
    assert basis["keywords"] == ["french", "translation"]
    assert [s.expert for s in answer.trace.selections] == ["linguist"]

    silent = make(
        cache_root,
        tmp_path / "kw",
        "k: 1, keyword_expert: judge",
        judge=FunctionExpert("judge", lambda messages: "[]"),
    )
    async with silent:
        fallback = await silent.run("what is 17 times 23")
    basis = fallback.trace.to_dict()["recruitment"]
    assert basis["source"] == "router"
    assert "no recurring keywords" in basis["note"]
    assert [s.expert for s in fallback.trace.selections] == ["algebraist"]


def test_config_errors_name_the_fix(cache_root: Path, profiles_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"dispatch\.combine: 'vote'"):
        parse_config(DEFAULT_SKILLS + "\ndispatch: {combine: vote}\n")
    with pytest.raises(ConfigError, match=r"recruitment\.keyword_expert: unknown expert 'nobody'"):
        parse_config(DEFAULT_SKILLS + "\nrecruitment: {keyword_expert: nobody}\n")
    text = (
        DEFAULT_SKILLS
        + "\nexperts:\n  - {name: stranger, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        + f"recruitment: {{profiles: '{profiles_dir}'}}\n"
    )
    with pytest.raises(ConfigError, match="none of the configured experts"):
        Switch.from_config(parse_config(text), cache_dir=cache_root)


def test_cli_fit_profiles(tmp_path: Path, cli_env: dict[str, str]) -> None:
    results, questions = write_results(tmp_path)
    out = tmp_path / "profiles"
    done = run(
        [
            "fit",
            "profiles",
            "--results",
            str(results),
            "--questions",
            str(questions),
            "--out",
            str(out),
        ],
        cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert "4 experts x 2 skills + 2 keywords from 20 questions" in done.stdout
    assert json.loads((out / "profiles.json").read_text())["schema"] == "skillswitch.profiles/2"
    bad = run(
        ["fit", "profiles", "--results", str(tmp_path / "missing.csv"), "--out", str(out)], cli_env
    )
    assert bad.returncode == 2
    assert "does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_staged_cascade_widens_until_one_answer_leads(
    cache_root: Path, profiles_dir: Path
) -> None:
    # math order: algebraist, allrounder, judge, linguist. Stage 1 disagrees; stage 2 (3
    # answers) ties 1-1-1; stage 3 adds linguist, whose "401" makes 401 lead.
    replies = {"algebraist": "391", "allrounder": "401", "judge": "999", "linguist": "401"}
    switch = make(
        cache_root,
        profiles_dir,
        "k: 4, cascade: [2, 3, 4]",
        **{name: TestExpert(name, reply=text) for name, text in replies.items()},
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    trace = answer.trace.to_dict()
    assert trace["recruitment"]["stages"] == [
        ["algebraist", "allrounder"],
        ["judge"],
        ["linguist"],
    ]
    early = make(
        cache_root,
        profiles_dir,
        "k: 4, cascade: [2, 3, 4]",
        **{
            name: TestExpert(name, reply=text) for name, text in {**replies, "judge": "391"}.items()
        },
    )
    async with early:
        answer = await early.run("what is 17 times 23")
    assert answer.trace.to_dict()["recruitment"]["stages"] == [
        ["algebraist", "allrounder"],
        ["judge"],
    ]
    with pytest.raises(ConfigError, match="increasing positive counts"):
        parse_config(DEFAULT_SKILLS + "\nrecruitment: {cascade: [3, 2]}\n")


def write_predictions(folder: Path) -> Path:
    lines = ["question_id," + ",".join(EXPERTS)]
    for skill, scores in RESULTS.items():
        for i in range(10):
            wrong = {e: str(2 + (i + j) % 2) for j, e in enumerate(EXPERTS)}
            answers = ["1" if i < scores[e] else wrong[e] for e in EXPERTS]
            lines.append(f"{skill}-{i}," + ",".join(answers))
    path = folder / "predictions.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_learned_combiner_from_fit_profiles(
    tmp_path: Path, cache_root: Path, cli_env: dict[str, str]
) -> None:
    results, _questions = write_results(tmp_path)
    predictions = write_predictions(tmp_path)
    out = tmp_path / "learned"
    done = run(
        [
            "fit",
            "profiles",
            "--results",
            str(results),
            "--predictions",
            str(predictions),
            "--cascade",
            "2,3",
            "--out",
            str(out),
        ],
        cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert "learned combiner for cascade [2, 3]" in done.stdout
    replies = {"algebraist": "391", "allrounder": "401", "judge": "401"}
    switch = make(
        cache_root,
        out,
        "k: 3, cascade: [2, 3]",
        "combine: learned",
        **{name: TestExpert(name, reply=text) for name, text in replies.items()},
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    aggregation = answer.trace.to_dict()["aggregation"]
    assert aggregation["mode"] == "voted"
    assert aggregation["detail"].startswith("learned ")
    # On validation the algebraist is right on math 9 times in 10 and the others rarely are.
    assert answer.text == "391"
    with pytest.raises(ConfigError, match="needs profiles with a combiner"):
        make(
            cache_root,
            _plain(tmp_path),
            "k: 2",
            "combine: learned",
        )


def _plain(tmp_path: Path) -> Path:
    results, questions = write_results(tmp_path)
    fit_profiles(load_validation(results, questions=questions)).save(tmp_path / "plain")
    return tmp_path / "plain"


# math ranks allrounder, algebraist, judge, linguist (competence x strength); but where the
# first two disagree (questions 7-9) only the linguist is right: the tie-breaker to widen with.
TIEBREAK_RIGHT = {
    "math": {
        "algebraist": range(9),
        "allrounder": range(7),
        "judge": range(6),
        "linguist": range(7, 10),
    },
    "translation": {
        "algebraist": range(1),
        "allrounder": range(7),
        "judge": range(5),
        "linguist": range(9),
    },
}


def write_tiebreak_results(folder: Path) -> tuple[Path, Path, Path]:
    results = ["question_id,category," + ",".join(EXPERTS)]
    predictions = ["question_id," + ",".join(EXPERTS)]
    questions = []
    for skill, right in TIEBREAK_RIGHT.items():
        for i in range(10):
            qid = f"{skill}-{i}"
            hits = [i in right[e] for e in EXPERTS]
            results.append(f"{qid},{skill}," + ",".join(str(int(h)) for h in hits))
            # Every expert errs its own way, so two wrong answers still disagree.
            answers = ["1" if h else str(2 + j) for j, h in enumerate(hits)]
            predictions.append(f"{qid}," + ",".join(answers))
            text = (
                f"what is {i + 3} times {i + 7}" if skill == "math" else f"translate {i} to french"
            )
            questions.append({"question_id": qid, "question": text, "category": skill})
    paths = folder / "results.csv", folder / "predictions.csv", folder / "questions.jsonl"
    paths[0].write_text("\n".join(results) + "\n", encoding="utf-8")
    paths[1].write_text("\n".join(predictions) + "\n", encoding="utf-8")
    paths[2].write_text("\n".join(json.dumps(q) for q in questions) + "\n", encoding="utf-8")
    return paths


async def test_disagreeing_first_stage_widens_with_the_tie_breaker(
    tmp_path: Path, cache_root: Path, cli_env: dict[str, str]
) -> None:
    results, predictions, questions = write_tiebreak_results(tmp_path)
    out = tmp_path / "tiebreak"
    done = run(
        [
            "fit",
            "profiles",
            "--results",
            str(results),
            "--predictions",
            str(predictions),
            "--questions",
            str(questions),
            "--cascade",
            "2,3",
            "--neighbours",
            "5",
            "--out",
            str(out),
        ],
        cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert "disagreement questions as neighbours" in done.stdout
    stored = json.loads((out / "profiles.json").read_text())
    assert stored["schema"] == "skillswitch.profiles/2"
    assert stored["neighbours"]["k"] == 5
    assert (out / "neighbours.npz").is_file()
    replies = {"algebraist": "391", "allrounder": "401", "judge": "999", "linguist": "391"}
    for profiles in (out, _without_neighbours(out, tmp_path)):
        switch = make(
            cache_root,
            profiles,
            "k: 3, cascade: [2, 3]",
            **{name: TestExpert(name, reply=text) for name, text in replies.items()},
        )
        async with switch:
            answer = await switch.run("what is 17 times 23")
        trace = answer.trace.to_dict()
        # Not the judge (third by competence x strength): the linguist, right on the
        # validation questions where the algebraist and the allrounder disagreed.
        assert trace["recruitment"]["stages"] == [["allrounder", "algebraist"], ["linguist"]]
        assert [s.expert for s in answer.trace.selections] == [
            "allrounder",
            "algebraist",
            "linguist",
        ]
        assert "tie-break accuracy" in answer.trace.selections[2].reason
        # Agreement settles the first stage: nobody else is asked.
        agreeing = make(
            cache_root,
            profiles,
            "k: 3, cascade: [2, 3]",
            **{name: TestExpert(name, reply="391") for name in EXPERTS},
        )
        async with agreeing:
            settled = await agreeing.run("what is 17 times 23")
        assert settled.trace.to_dict()["recruitment"]["stages"] == [["allrounder", "algebraist"]]


def _without_neighbours(folder: Path, tmp_path: Path) -> Path:
    """The same profiles widened by skill-level tie-break competence only."""
    data = json.loads((folder / "profiles.json").read_text())
    data["neighbours"] = None
    plain = tmp_path / "skill-level"
    plain.mkdir()
    (plain / "profiles.json").write_text(json.dumps(data), encoding="utf-8")
    return plain


async def test_neighbours_of_another_encoder_are_a_config_error(
    tmp_path: Path, cache_root: Path, cli_env: dict[str, str]
) -> None:
    results, predictions, questions = write_tiebreak_results(tmp_path)
    out = tmp_path / "tiebreak"
    args = ["fit", "profiles", "--results", str(results), "--predictions", str(predictions)]
    done = run(
        [*args, "--questions", str(questions), "--neighbours", "5", "--out", str(out)], cli_env
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "profiles.json").read_text())
    data["neighbours"]["encoder"] = "some-other-encoder"
    (out / "profiles.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="tie-break neighbours were embedded by"):
        make(cache_root, out, "k: 3, cascade: [2, 3]")
    no_answers = run([*args[:-2], "--neighbours", "5", "--out", str(out)], cli_env)
    assert no_answers.returncode == 2
    assert "give --predictions too" in no_answers.stderr


async def test_schema_1_profiles_still_widen_by_rank(tmp_path: Path, cache_root: Path) -> None:
    results, predictions, _questions = write_tiebreak_results(tmp_path)
    profiles = fit_profiles(load_validation(results, predictions=predictions))
    data = profiles.to_dict()
    data["schema"] = "skillswitch.profiles/1"
    for key in ("tiebreak", "neighbours"):
        del data[key]
    for skill in data["skills"]:
        del skill["tiebreak"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "profiles.json").write_text(json.dumps(data), encoding="utf-8")
    replies = {"algebraist": "391", "allrounder": "401", "judge": "999", "linguist": "391"}
    switch = make(
        cache_root,
        old,
        "k: 3, cascade: [2, 3]",
        **{name: TestExpert(name, reply=text) for name, text in replies.items()},
    )
    async with switch:
        answer = await switch.run("what is 17 times 23")
    assert answer.trace.to_dict()["recruitment"]["stages"] == [
        ["allrounder", "algebraist"],
        ["judge"],
    ]
