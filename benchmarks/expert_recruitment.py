"""Expert recruitment on MMLU-Pro: 29 models' real 5-shot answers, no LLM calls.

For each of 5 seeds the 12,032 questions are split 50/50 stratified by category; profiles
(``skillswitch fit profiles``' code path), the router's examples and every tuned choice come
from the profile half, and every figure is measured on the other half. Policies side by side:

- best single model: the model with the best profile-half accuracy, for every question;
- random: a uniformly random model per question;
- per-category best (router): the best profile-half model of the category that skillswitch's
  router (MiniLM exemplar classifier over the profile half's questions) predicts;
- recruitment top-1: skillswitch's Recruiter (competence on the router's skills x strength);
- recruitment top-3 vote: the top 3 recruits' actual letters, weighted by profiled competence;
- recruitment cascades: ask the top 2; when they disagree widen to 3 or 4 (then 5 while no
  answer leads), the rule ``recruitment.cascade: [2, 4, 5]`` applies at run time; then a
  competence-weighted vote (``dispatch.combine: vote``) or the learned combiner fitted on the
  profile half's answers (``fit profiles --predictions``, ``dispatch.combine: learned``), as
  the previous profiles (schema 1) did: widened by the first-stage ranking, no answer flags;
- tie-break recruitment: when the first two disagree the cascade widens with the experts most
  often right where the first stage disagreed on the profile half (``Recruiter.widen``), by
  category or on the request's 50 nearest such questions (``fit profiles --neighbours 50``),
  and the learned combiner has a flag per answer letter (schema 2 profiles);
- oracle: correct when any model is.

An answer from a vote is graded correct when some called model that gave that letter was
graded correct (the dataset's own grading). "Calls" counts the models whose answers a policy
used per question. "Gap closed" = (accuracy - best single) / (oracle - best single).

    python benchmarks/expert_recruitment.py --json bench-results/expert_recruitment.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.agents.aggregate import weighted_vote
from skillswitch.config import MiniLMEncoderConfig
from skillswitch.router import Router
from skillswitch.router.combiner import combiner_examples, fit_combiner
from skillswitch.router.encoders import CachedEncoder, EmbeddingCache, Encoder, build_encoder
from skillswitch.router.profiles import fit_profiles, log_odds, with_neighbours
from skillswitch.router.recruitment import Recruiter, RecruitmentPolicy, cascade_length
from skillswitch.router.trained import load_trained_router
from skillswitch.router.training import FitSettings, fit_intents, holdout_split
from skillswitch.router.validation import ValidationResults, load_validation

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "eval" / "mmlu_pro"
SEEDS = (0, 1, 2, 3, 4)
VOTE_OPTIONS = 10  # MMLU-Pro questions have up to 10 options
CASCADES = ((2, 3), (2, 4), (2, 4, 5))
LEARNED_CASCADES = ((2, 4), (2, 4, 5))
TIEBREAK_CASCADES = ((2, 4), (2, 5))
NEIGHBOURS = 50


@dataclass
class Split:
    profile: np.ndarray
    test: np.ndarray


def stratified_split(categories: Sequence[str], seed: int) -> Split:
    rng = np.random.default_rng(seed)
    labels = np.asarray(categories)
    profile = np.zeros(len(labels), dtype=bool)
    for category in np.unique(labels):
        index = np.flatnonzero(labels == category)
        rng.shuffle(index)
        profile[index[: len(index) // 2]] = True
    return Split(np.flatnonzero(profile), np.flatnonzero(~profile))


def vote_grade(
    members: Sequence[int], weights: Sequence[float], letters: np.ndarray, correct: np.ndarray
) -> bool:
    """Grade the weighted vote of ``members`` (column indices) on one question."""
    answers = [letters[m] or None for m in members]
    if not any(answers):
        return bool(correct[members[0]])
    winner, _ = weighted_vote(answers, weights)
    return any(correct[m] for m, a in zip(members, answers, strict=True) if a == winner)


def finetuned_router(
    examples: dict[str, list[str]], seed: int, workdir: Path, cache: Path, steps: int | None
) -> Router:
    """The router ``skillswitch fit intents --method finetune`` fits on the profile half's
    questions and categories (a stratified tenth held out to calibrate it, as the CLI does);
    every MMLU-Pro question is in scope, so its threshold is set below any score."""
    texts = [text for label in sorted(examples) for text in examples[label]]
    labels = [label for label in sorted(examples) for _ in examples[label]]
    train, held = holdout_split(texts, labels, seed=seed)
    out = workdir / f"category-router-{seed}"
    fit_intents(
        [texts[i] for i in train],
        [labels[i] for i in train],
        [texts[i] for i in held],
        [labels[i] for i in held],
        out,
        oos_label="out_of_scope",
        settings=FitSettings(max_length=128, max_steps=steps, seed=seed),
        cache_root=cache,
    )
    return load_trained_router(
        out, threshold=-1e9, top_k=3, margin=0.05, max_chars=4000, split_clauses=False
    )


def run_seed(
    data: ValidationResults,
    texts: Sequence[str],
    encoder: Encoder,
    seed: int,
    neighbours: int,
    router_kind: str = "exemplar",
    workdir: Path | None = None,
    cache: Path | None = None,
    router_steps: int | None = None,
) -> dict[str, dict[str, float]]:
    split = stratified_split([s or "" for s in data.skills], seed)
    profile_data = data.subset(split.profile)
    current = fit_profiles(profile_data)
    # The previous policy: no tie-break competence (profiles schema 1 read today).
    profiles = replace(current, tiebreak=None, tiebreak_strength=None)
    vectors = np.asarray(encoder.encode(list(texts)))
    correct = np.nan_to_num(data.correct, nan=0.0)
    letters = np.asarray(data.answers, dtype=object)
    test = split.test
    examples: dict[str, list[str]] = defaultdict(list)
    for row in split.profile:
        examples[str(data.skills[row])].append(texts[row])
    if router_kind == "finetune":
        if workdir is None or cache is None:
            raise ValueError("a fine-tuned router needs a work folder and the encoder cache")
        router = finetuned_router(dict(examples), seed, workdir, cache, router_steps)
    else:
        router = Router.from_examples(
            encoder,
            dict(sorted(examples.items())),
            neighbours=neighbours,
            threshold=-1.0,  # every MMLU-Pro question is in scope
            top_k=3,
            margin=0.05,
            max_chars=4000,
            split_clauses=False,
        )
    decisions = router.route_many([texts[i] for i in test])
    true_category = [data.skills[i] for i in test]
    router_accuracy = float(
        np.mean([d.label == c for d, c in zip(decisions, true_category, strict=True)])
    )
    weights_of = [{s.skill: max(s.score, 1e-6) for s in d.skills} for d in decisions]
    rng = np.random.default_rng(1000 + seed)
    column = {name: j for j, name in enumerate(data.experts)}
    best = int(np.argmax(profiles.strength))
    results: dict[str, dict[str, float]] = {}

    def record(name: str, hits: Sequence[bool] | np.ndarray, calls: float) -> None:
        results[name] = {"accuracy": float(np.mean(hits)), "calls": float(calls)}

    record("best single model", correct[test, best], 1)
    record("random model", correct[test, rng.integers(0, correct.shape[1], len(test))], 1)
    per_category = [
        correct[q, int(np.argmax(profiles.local_competence({d.label: 1.0})))]
        for q, d in zip(test, decisions, strict=True)
    ]
    record("per-category best (router)", per_category, 1)

    top1 = Recruiter(profiles, RecruitmentPolicy(k=1))
    record(
        "recruitment top-1",
        [
            correct[q, column[top1.recruit(w)[0].expert]]
            for q, w in zip(test, weights_of, strict=True)
        ],
        1,
    )
    top3 = Recruiter(profiles, RecruitmentPolicy(k=3))
    voted = []
    for q, w in zip(test, weights_of, strict=True):
        recruits = top3.recruit(w)
        members = [column[r.expert] for r in recruits]
        weights = [float(log_odds(r.competence, VOTE_OPTIONS)) for r in recruits]
        voted.append(vote_grade(members, weights, letters[q], correct[q]))
    record("recruitment top-3 vote", voted, 3)
    for stages in CASCADES:
        wide = Recruiter(profiles, RecruitmentPolicy(k=stages[-1]))
        hits, calls = [], 0
        for q, w in zip(test, weights_of, strict=True):
            recruits = wide.recruit(w)
            asked = cascade_length([letters[q][column[r.expert]] or None for r in recruits], stages)
            members = [column[r.expert] for r in recruits[:asked]]
            weights = [float(log_odds(r.competence, VOTE_OPTIONS)) for r in recruits[:asked]]
            hits.append(vote_grade(members, weights, letters[q], correct[q]))
            calls += asked
        name = "->".join(map(str, stages))
        record(f"recruitment cascade {name} vote", hits, calls / len(test))
    for stages in LEARNED_CASCADES:
        # Fitted on the profile half's answers, as `fit profiles --predictions` did.
        combiner = fit_combiner(
            data.experts, combiner_examples(profiles, profile_data, stages), answer_flags=False
        )
        held_out = combiner_examples(profiles, data.subset(test), stages, weights_of)
        hits = [combiner.choose(e.answers, e.competence) in e.correct for e in held_out]
        calls = sum(len(e.answers) for e in held_out)
        name = "->".join(map(str, stages))
        record(f"recruitment cascade {name} learned", hits, calls / len(test))
    # As `fit profiles --predictions [--neighbours 50]` does now: tie-break competence, the
    # profile half's disagreements as neighbours (each kept out of its own), answer flags.
    near = with_neighbours(
        current, profile_data, vectors[split.profile], encoder.identity, k=NEIGHBOURS
    )
    for label, fitted in (("category", current), ("neighbours", near)):
        own = vectors[split.profile] if fitted.neighbours is not None else None
        held = vectors[test] if fitted.neighbours is not None else None
        for stages in TIEBREAK_CASCADES:
            train = combiner_examples(fitted, profile_data, stages, vectors=own, own_questions=True)
            combiner = fit_combiner(data.experts, train)
            held_out = combiner_examples(
                fitted, data.subset(test), stages, weights_of, vectors=held
            )
            hits = [combiner.choose(e.answers, e.competence) in e.correct for e in held_out]
            calls = sum(len(e.answers) for e in held_out)
            name = "->".join(map(str, stages))
            record(f"tie-break ({label}) cascade {name} learned", hits, calls / len(test))
    record("oracle", correct[test].max(1), correct.shape[1])
    results["_router"] = {"category_accuracy": router_accuracy}
    return results


def summarise(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    names = [n for n in per_seed[0] if not n.startswith("_")]
    best = np.array([s["best single model"]["accuracy"] for s in per_seed])
    oracle = np.array([s["oracle"]["accuracy"] for s in per_seed])
    table = {}
    for name in names:
        accuracy = np.array([s[name]["accuracy"] for s in per_seed])
        gap = (accuracy - best) / (oracle - best)
        table[name] = {
            "accuracy": round(float(accuracy.mean()), 4),
            "accuracy_std": round(float(accuracy.std()), 4),
            "gap_closed": round(float(gap.mean()), 4),
            "gap_closed_min": round(float(gap.min()), 4),
            "calls": round(float(np.mean([s[name]["calls"] for s in per_seed])), 3),
        }
    router = [s["_router"]["category_accuracy"] for s in per_seed]
    return {
        "policies": table,
        "router_category_accuracy": round(float(np.mean(router)), 4),
        "seed_count": len(per_seed),
    }


def print_table(summary: dict[str, Any]) -> None:
    seeds = summary["seed_count"]
    print(f"\nMMLU-Pro expert recruitment, mean of {seeds} seeds (50/50 split by category)")
    print(f"router category accuracy on the test half: {summary['router_category_accuracy']:.4f}")
    print(f"{'policy':44} {'accuracy':>9} {'gap closed':>11} {'(min)':>7} {'calls':>6}")
    for name, row in summary["policies"].items():
        print(
            f"{name:44} {row['accuracy']:9.4f} {row['gap_closed']:11.3f} "
            f"{row['gap_closed_min']:7.3f} {row['calls']:6.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--data", type=Path, default=DATA, help="the mmlu_pro folder")
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--neighbours", type=int, default=10, help="router exemplar k")
    parser.add_argument(
        "--cache", type=Path, default=REPO / "bench-results" / "cache", help="embedding cache"
    )
    parser.add_argument(
        "--router",
        choices=("exemplar", "finetune"),
        default="exemplar",
        help="the category router: the exemplar classifier over the profile half's questions, "
        "or MiniLM fine-tuned on them (fit intents --method finetune; ~13 min a seed on 2 cores)",
    )
    parser.add_argument(
        "--router-steps", type=int, default=None, help="cap on the fine-tune's steps (smoke runs)"
    )
    args = parser.parse_args(argv)
    folder: Path = args.data
    if not (folder / "mmlu_pro_test_correctness_5shot.csv").is_file():
        print(f"skipped: {folder} has no MMLU-Pro results (../shared/eval/mmlu_pro)")
        return 0
    started = time.perf_counter()
    data = load_validation(
        folder / "mmlu_pro_test_correctness_5shot.csv",
        predictions=folder / "mmlu_pro_test_predictions_5shot.csv",
        questions=folder / "mmlu_pro_test_questions.jsonl",
    )
    texts = [t or "" for t in data.texts()]
    args.cache.mkdir(parents=True, exist_ok=True)
    encoder = CachedEncoder(
        build_encoder(MiniLMEncoderConfig(), args.cache), EmbeddingCache(args.cache / "emb.sqlite")
    )
    encoder.encode(texts)  # embed every question once (cached across runs)
    with tempfile.TemporaryDirectory(prefix="routers-", dir=args.cache) as work:
        per_seed = [
            run_seed(
                data,
                texts,
                encoder,
                seed,
                args.neighbours,
                args.router,
                Path(work),
                args.cache,
                args.router_steps,
            )
            for seed in SEEDS[: args.seeds]
        ]
    summary = summarise(per_seed)
    report = {
        "benchmark": "expert_recruitment",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "data": str(folder),
        "questions": len(data),
        "experts": len(data.experts),
        "seeds": list(SEEDS[: args.seeds]),
        "router": args.router,
        "seconds": round(time.perf_counter() - started, 1),
        **summary,
    }
    print_table(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
