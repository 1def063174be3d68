"""``skillswitch fit intents`` and ``fit profiles``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skillswitch.exceptions import (
    DatasetError,
)

if TYPE_CHECKING:
    pass

from skillswitch.cli.app import fit_app
from skillswitch.cli.common import (
    ConfigOption,
    Spinner,
    load_router,
    reports_errors,
    stage_progress,
)


@fit_app.command("intents")
@reports_errors
def fit_intents_command(
    train: Annotated[
        Path, typer.Option(help="Training data (CSV/JSONL text,label or CLINC JSON).")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the classifier artifact to.")],
    val: Annotated[
        Path | None,
        typer.Option(help="Validation data for the threshold (default: 10% of --train held out)."),
    ] = None,
    oos_label: Annotated[
        str, typer.Option("--oos-label", help="Label of out-of-scope items.")
    ] = "oos",
    method: Annotated[
        str, typer.Option(help="finetune (encoder + head) or linear (head only).")
    ] = "finetune",
    epochs: Annotated[
        float | None, typer.Option(min=0.01, help="finetune: passes over the data (default 3).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps.")
    ] = None,
    objective: Annotated[
        str, typer.Option(help="Threshold objective: balanced, min or accuracy.")
    ] = "min",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[
        int, typer.Option(min=1, max=256, help="CPU threads (1 is faster on a busy machine).")
    ] = 2,
) -> None:
    """Train an intent classifier and choose its out-of-scope threshold on validation data."""
    fitted = fit_classifier(
        train, val, out, oos_label, method, epochs, max_steps, objective, seed, threads
    )
    calibration = fitted.calibration
    recall = (
        f", out-of-scope recall {calibration.out_of_scope_recall:.4f}"
        if calibration.out_of_scope_recall is not None
        else ""
    )
    typer.echo(
        f"wrote {fitted.folder}: {len(fitted.labels)} labels, {fitted.steps} steps in "
        f"{fitted.seconds:.0f}s; threshold {calibration.threshold:.4f} chosen on validation "
        f"({calibration.objective}): in-scope accuracy {calibration.in_scope_accuracy:.4f}{recall}"
    )
    typer.echo(
        f"use it with:  router: {{classifier: {{kind: trained, artifact: {fitted.folder}}}}}"
    )


@fit_app.command("profiles")
@reports_errors
def fit_profiles_command(
    results: Annotated[
        Path,
        typer.Option(
            help="Validation results: wide CSV (question_id, 0/1 column per expert) or JSONL."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write profiles.json to.")],
    questions: Annotated[
        Path | None,
        typer.Option(help="Questions JSONL (question_id, question, category, keywords)."),
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Wide CSV of the answer each expert gave.")
    ] = None,
    aggregator_results: Annotated[
        Path | None,
        typer.Option(
            help="Results of candidates acting as aggregator (same layout): picks the aggregator."
        ),
    ] = None,
    skills: Annotated[
        str,
        typer.Option(
            help="Skill of each question: auto (its category, else the router's skill for its "
            "text), category, or router."
        ),
    ] = "auto",
    prior: Annotated[
        float, typer.Option(min=0, help="Shrinkage toward global strength, in questions.")
    ] = 10.0,
    cascade: Annotated[
        str,
        typer.Option(
            help="With --predictions: the cascade stages the learned combiner is fitted for "
            "(as recruitment.cascade), e.g. 2,4."
        ),
    ] = "2,4",
    neighbours: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --predictions and question texts: keep the questions where the first "
            "stage disagreed, embedded by the config's router encoder, and widen a cascade by "
            "the experts right on the request's K nearest (0: by skill only).",
        ),
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Build expert profiles (global strength, competence per skill) for recruitment; with
    --predictions also tie-break competence (who to ask when the first stage disagrees) and a
    learned answer combiner (dispatch.combine: learned)."""
    import itertools
    from dataclasses import replace

    from skillswitch.router.combiner import combiner_examples, fit_combiner
    from skillswitch.router.profiles import fit_profiles, with_neighbours
    from skillswitch.router.validation import load_validation

    try:
        stages = [int(part) for part in cascade.split(",")]
    except ValueError:
        stages = []
    if not stages or stages[0] < 1 or any(b <= a for a, b in itertools.pairwise(stages)):
        raise typer.BadParameter(
            f"{cascade!r}; give increasing counts like 2,4", param_hint="--cascade"
        )

    if skills not in {"auto", "category", "router"}:
        raise typer.BadParameter(f"{skills!r}; use auto, category or router", param_hint="--skills")
    data = load_validation(results, predictions=predictions, questions=questions)
    unlabelled = sum(skill is None for skill in data.skills)
    if skills == "router" or (skills == "auto" and unlabelled):
        data = _route_questions(data, config)
    elif skills == "category" and unlabelled == len(data):
        raise DatasetError(
            f"{results}: no question has a category; add a category column, give --questions "
            "with categories, or use --skills router"
        )
    judged = (
        load_validation(aggregator_results, questions=questions)
        if aggregator_results is not None
        else None
    )
    if neighbours and data.answers is None:
        raise typer.BadParameter(
            "neighbours are questions where experts disagreed: give --predictions too",
            param_hint="--neighbours",
        )
    profiles = fit_profiles(data, prior=prior, aggregator_results=judged, first_stage=stages[0])
    combiner_note = ""
    vectors = None
    if neighbours:
        vectors, encoder = _embed_questions(data, config)
        profiles = with_neighbours(
            profiles, data, vectors, encoder.identity, encoder_name=encoder.name, k=neighbours
        )
        combiner_note += f"; {len(profiles.neighbours or ())} disagreement questions as neighbours"
    if data.answers is not None:
        examples = combiner_examples(profiles, data, stages, vectors=vectors, own_questions=True)
        combiner = fit_combiner(data.experts, examples)
        profiles = replace(profiles, combiner=combiner.to_dict())
        combiner_note += f"; learned combiner for cascade {stages}"
    path = profiles.save(out)
    strongest = sorted(
        zip(profiles.experts, profiles.strength, strict=True), key=lambda pair: -pair[1]
    )[:3]
    typer.echo(
        f"wrote {path}: {len(profiles.experts)} experts x {len(profiles.skill_labels)} skills"
        f" + {len(profiles.keywords)} keywords from {profiles.questions} questions; strongest: "
        + ", ".join(f"{name} {value:.3f}" for name, value in strongest)
        + f"; aggregator {profiles.aggregator} ({profiles.aggregator_reason})"
        + combiner_note
    )
    typer.echo(f"use it with:  recruitment: {{profiles: {out}}}")


def _embed_questions(data: Any, config_path: Path | None) -> Any:
    """Each validation question's text, embedded by the config's router encoder."""
    texts = _question_texts(data, "no text to embed for --neighbours")
    encoder = load_router(config_path).encoder
    with Spinner(f"embedding {len(texts)} validation questions"):
        return encoder.encode(list(texts)), encoder


def _route_questions(data: Any, config_path: Path | None) -> Any:
    """Label each validation question with the router's best skill for its text."""
    texts = _question_texts(data, "neither a category nor text to route")
    router = load_router(config_path)
    with Spinner(f"routing {len(texts)} validation questions"):
        decisions = router.route_many(list(texts))
    return data.with_skills([None if d.out_of_scope else d.label for d in decisions])


def _question_texts(data: Any, lacking: str) -> list[str]:
    """Every validation question's text; a DatasetError counting those that have none."""
    texts = data.texts()
    missing = sum(text is None for text in texts)
    if missing:
        raise DatasetError(
            f"{data.source}: {missing} question(s) have {lacking}; "
            "give --questions with the question texts"
        )
    return list(texts)


def fit_classifier(
    train: Path,
    val: Path | None,
    out: Path,
    oos_label: str,
    method: str,
    epochs: float | None,
    max_steps: int | None,
    objective: str,
    seed: int,
    threads: int = 2,
) -> Any:
    from skillswitch.config import environment
    from skillswitch.evals.datasets import check_labels, load_labelled
    from skillswitch.router.training import FitSettings, fit_intents, holdout_split

    if method not in ("finetune", "linear"):
        raise DatasetError(f"--method {method!r} is not one of finetune, linear")
    if objective not in ("balanced", "min", "accuracy"):
        raise DatasetError(f"--objective {objective!r} is not one of balanced, min, accuracy")
    train_data = load_labelled(train, "train")
    texts, labels = list(train_data.texts), list(train_data.labels)
    if val is not None:
        val_data = load_labelled(val, "val")
        known = sorted({label for label in labels if label != oos_label})
        check_labels(val_data, known, out_of_scope_label=oos_label, against="the training labels")
        val_texts, val_labels = list(val_data.texts), list(val_data.labels)
    else:
        kept, held = holdout_split(texts, labels, seed=seed)
        val_texts, val_labels = [texts[i] for i in held], [labels[i] for i in held]
        texts, labels = [texts[i] for i in kept], [labels[i] for i in kept]
    settings = FitSettings(
        method=method,  # type: ignore[arg-type]
        epochs=epochs if epochs is not None else FitSettings().epochs,
        max_steps=max_steps,
        seed=seed,
        threads=threads,
        objective=objective,  # type: ignore[arg-type]
    )
    with stage_progress() as report:
        return fit_intents(
            texts,
            labels,
            val_texts,
            val_labels,
            out,
            oos_label=oos_label,
            settings=settings,
            cache_root=environment.cache_dir(),
            progress=report,
        )


# --- eval ----------------------------------------------------------------------------------


@fit_app.command("tools")
@reports_errors
def fit_tools_command(
    queries: Annotated[
        list[Path],
        typer.Option(
            help="Requests labelled with their tools: JSON Lines {request, tools: [server__tool]}"
            " or LiveMCPBench annotations (both with --catalog), or a BFCL question file with "
            "possible_answer/ beside it. Repeat to combine files."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the retrieval encoder to.")],
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="The tools the labels name: `skillswitch tools list --json` output, or a "
            "LiveMCPBench tools.json."
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the examples.")] = 2.0,
    lr: Annotated[float, typer.Option(min=1e-7, max=1e-2, help="Learning rate (AdamW).")] = 2e-5,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps.")
    ] = None,
    validation: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help='Share of the requests held out of the fit to fit the "no tool applies" '
            "threshold on (0: keep the default threshold).",
        ),
    ] = 0.2,
    max_top1_loss: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Share of held-out requests whose right top tool the threshold may reject.",
        ),
    ] = 0.02,
    evidence: Annotated[
        bool,
        typer.Option(
            help="Also fit the argument-evidence correction of relevance on the held-out "
            "requests (needs at least 20 without a tool): a request that names a tool's topic "
            "but gives none of its required arguments counts as one no tool applies to.",
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[
        int, typer.Option(min=1, max=256, help="CPU threads (1 is faster on a busy machine).")
    ] = 2,
) -> None:
    """Fine-tune the tool-retrieval encoder on requests labelled with the tools that served
    them (tools.retrieval.encoder). Requests that no tool serves (`"tools": []`, BFCL
    irrelevance files) teach it when no tool applies."""
    from skillswitch.evals.tools import detect_tool_format, load_tool_queries
    from skillswitch.tools.fitting import (
        MIN_VALIDATION,
        ToolFitSettings,
        examples_from,
        fit_tool_encoder,
        split_validation,
    )

    if catalog is not None and all(detect_tool_format(f) == "bfcl" for f in queries):
        raise typer.BadParameter(
            "every --queries file is BFCL (each query carries its candidates); leave it out",
            param_hint="--catalog",
        )
    settings = ToolFitSettings(
        epochs=epochs,
        lr=lr,
        max_steps=max_steps,
        seed=seed,
        threads=threads,
        validation=validation,
        max_top1_loss=max_top1_loss,
        evidence=evidence,
    )
    examples, held_out = [], []
    for file in queries:
        shared = catalog if detect_tool_format(file) != "bfcl" else None
        train, held = split_validation(load_tool_queries(file, shared), validation, seed=seed)
        examples.extend(examples_from(train))
        held_out.append(held)
    with stage_progress() as report:
        fitted = fit_tool_encoder(
            examples,
            out,
            settings=settings,
            validation=held_out,
            sources=[str(file) for file in queries],
            progress=report,
        )
    no_tool = f" and {fitted.no_tool_requests} without one" if fitted.no_tool_requests else ""
    typer.echo(
        f"wrote {fitted.folder}: {fitted.examples} examples from {fitted.requests} requests "
        f"with a tool{no_tool}, {fitted.steps} steps in {fitted.seconds:.0f}s"
    )
    scores = fitted.validation
    if scores is not None:
        rejected = (
            f", rejects {scores.rejected:.1%} of {scores.no_tool_requests} without one"
            if scores.rejected is not None
            else ""
        )
        typer.echo(
            f'"no tool applies" below relevance {scores.threshold:.3f}, fitted on '
            f"{scores.requests} held-out requests with a tool: top-1 {scores.top1:.1%}, "
            f"{scores.top1_lost:.1%} of them rejected{rejected}"
        )
        if scores.evidence and scores.rejected_by_relevance is not None:
            typer.echo(
                "relevance corrected by argument evidence (does the request give what the tool "
                f"needs), cross-fitted on the same requests; uncorrected it would reject "
                f"{scores.rejected_by_relevance:.1%}"
            )
    else:
        typer.echo(
            f'"no tool applies" keeps the default threshold: fewer than {MIN_VALIDATION} '
            "held-out requests with a tool to fit one on (raise --validation, or label more)"
        )
    typer.echo(f"use it with:  tools: {{retrieval: {{encoder: {fitted.folder}}}}}")
    typer.echo(
        f"score it with:  skillswitch eval tools --encoder {fitted.folder} --queries HELD_OUT_FILE"
    )
