"""``skillswitch eval intents`` and ``eval tools``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skillswitch.exceptions import (
    DatasetError,
)

if TYPE_CHECKING:
    from skillswitch.router import Router

from skillswitch.cli.app import eval_app
from skillswitch.cli.common import (
    Spinner,
    progress_bar,
    reports_errors,
)
from skillswitch.cli.fit import fit_classifier

_METHODS = ("exemplar", "linear", "finetune")


@eval_app.command("intents")
@reports_errors
def eval_intents(
    test: Annotated[
        Path, typer.Option(help="Labelled test data (CSV/JSONL text,label or CLINC JSON).")
    ],
    train: Annotated[
        Path | None, typer.Option(help="Training data; its labels are the skills.")
    ] = None,
    val: Annotated[
        Path | None, typer.Option(help="Validation data: chooses the threshold.")
    ] = None,
    artifact: Annotated[
        Path | None, typer.Option(help="Evaluate a classifier saved by `fit intents` instead.")
    ] = None,
    oos_label: Annotated[
        str, typer.Option("--oos-label", help="Label of out-of-scope items.")
    ] = "oos",
    method: Annotated[
        str, typer.Option(help=f"How to build the router from --train: {', '.join(_METHODS)}.")
    ] = "exemplar",
    neighbours: Annotated[
        int, typer.Option(min=1, max=32, help="exemplar: examples averaged per skill.")
    ] = 1,
    objective: Annotated[
        str, typer.Option(help="Threshold objective: balanced, min or accuracy.")
    ] = "min",
    latency_requests: Annotated[
        int, typer.Option(min=0, help="Single requests timed for p50/p99.")
    ] = 500,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG: threshold curve + worst-class confusion.")
    ] = None,
) -> None:
    """Score a router on labelled data: accuracy, out-of-scope recall and precision, macro-F1,
    latency."""
    from skillswitch.evals.datasets import check_labels, load_labelled

    if objective not in ("balanced", "min", "accuracy"):
        raise DatasetError(f"--objective {objective!r} is not one of balanced, min, accuracy")
    if (train is None) == (artifact is None):
        raise DatasetError("give either --train (to build a router) or --artifact (to load one)")
    test_data = load_labelled(test, "test")
    if artifact is not None:
        from skillswitch.router.trained import load_trained_router

        router = load_trained_router(artifact, out_of_scope_label=oos_label)
        if val is not None:
            val_data = load_labelled(val, "val")
            check_labels(
                val_data, router.skills, out_of_scope_label=oos_label, against=str(artifact)
            )
            router.calibrate(val_data.texts, val_data.labels, objective=objective)  # type: ignore[arg-type]
    else:
        assert train is not None
        router = _router_from_data(train, val, oos_label, method, neighbours, objective)
    check_labels(
        test_data, router.skills, out_of_scope_label=oos_label, against="the training labels"
    )
    report = _run_eval(router, test_data, oos_label, latency_requests)
    _print_report(report, test_data.source)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        from skillswitch.evals.plots import plot_report

        plot_report(report, test_data.labels, plot, oos_label=oos_label)
        typer.echo(f"wrote {plot}")


@eval_app.command("tools")
@reports_errors
def eval_tools(
    queries: Annotated[
        Path,
        typer.Option(
            help="Labelled requests (JSON Lines {request, tools: [server__tool]}) or "
            "LiveMCPBench annotations (all_annotations.json), both with --catalog; or a BFCL "
            "question file (each query carries its candidate functions)."
        ),
    ],
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="The MCP catalogue the queries search: `skillswitch tools list --json` "
            "output, or LiveMCPBench tools.json."
        ),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(help="BFCL gold calls (default: possible_answer/ next to --queries)."),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Cut-off for recall and hits.")] = 10,
    encoder_folder: Annotated[
        Path | None,
        typer.Option(
            "--encoder",
            help="A retrieval encoder written by `skillswitch fit tools` (default: MiniLM).",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=-1.0,
            max=2.0,
            help='Relevance below which "no tool applies" (default: the threshold fitted with '
            "--encoder, else 0.33).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON.")
    ] = None,
) -> None:
    """Score tool retrieval: recall@k, any gold tool in the top 5 / k, MRR, top-1, and how
    often "no tool applies" is decided (BFCL irrelevance files: all queries should be)."""
    from skillswitch.config import MiniLMEncoderConfig, environment
    from skillswitch.evals.tools import evaluate_retrieval, load_tool_queries
    from skillswitch.router.encoders import EmbeddingCache, Encoder, build_encoder
    from skillswitch.tools.retrieval import DEFAULT_THRESHOLD, RetrievalSettings

    data = load_tool_queries(queries, catalog, answers)
    root = environment.cache_dir()
    encoder: Encoder
    if encoder_folder is not None:
        from skillswitch.tools.fitting import fitted_settings, load_tool_encoder

        settings = fitted_settings(encoder_folder, threshold=threshold)
        encoder = load_tool_encoder(encoder_folder)
    else:
        settings = RetrievalSettings(
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold
        )
        # float32: what tool retrieval runs with the default router.encoder.precision (auto),
        # see skillswitch.router.encoders.tool_retrieval_encoder.
        encoder = build_encoder(MiniLMEncoderConfig(precision="float32"), root)
    cache = EmbeddingCache(root / "embeddings.sqlite")
    try:
        with Spinner(f"ranking tools for {len(data)} queries"):
            report = evaluate_retrieval(data, encoder, k=k, settings=settings, cache=cache)
    finally:
        cache.close()
    _print_tool_report(report, k)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        typer.echo(f"wrote {json_out}")


def _print_tool_report(report: Any, k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tool retrieval on {report.source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    ranking = report.ranking
    if ranking is not None:
        table.add_row("queries with gold tools", str(ranking.queries))
        table.add_row(f"recall@{k}", f"{ranking.recall[k]:.4f}")
        table.add_row("any gold tool in top 5", f"{ranking.hit[5]:.4f}")
        if k != 5:
            table.add_row(f"any gold tool in top {k}", f"{ranking.hit[k]:.4f}")
        table.add_row("MRR", f"{ranking.mrr:.4f}")
        table.add_row("top-1 accuracy", f"{ranking.top1:.4f}")
        table.add_row(
            'top-1 accuracy, "no tool applies" counted wrong', f"{ranking.top1_accepted:.4f}"
        )
    if report.rejection is not None:
        table.add_row('"no tool applies" queries rejected', f"{report.rejection:.4f}")
    label = "relevance threshold"
    if report.evidence:
        label += " (relevance corrected by argument evidence)"
    table.add_row(label, f"{report.threshold:.4f}")
    Console().print(table)


def _router_from_data(
    train: Path, val: Path | None, oos_label: str, method: str, neighbours: int, objective: str
) -> Router:
    from skillswitch.config import MiniLMEncoderConfig, environment
    from skillswitch.evals.datasets import check_labels, load_labelled
    from skillswitch.evals.intents import exemplar_router_from_data
    from skillswitch.router.encoders import EmbeddingCache, build_encoder

    if method not in _METHODS:
        raise DatasetError(f"--method {method!r} is not one of {', '.join(_METHODS)}")
    if method != "exemplar":
        import tempfile

        from skillswitch.router.trained import load_trained_router

        # The router holds the model in memory once loaded, so the folder can go right away.
        with tempfile.TemporaryDirectory(prefix="skillswitch-eval-") as scratch:
            folder = Path(scratch) / "artifact"
            fit_classifier(train, val, folder, oos_label, method, None, None, objective, 0)
            return load_trained_router(folder, out_of_scope_label=oos_label)
    train_data = load_labelled(train, "train")
    val_data = load_labelled(val, "val") if val is not None else None
    known = sorted({label for label in train_data.labels if label != oos_label})
    if not known:
        raise DatasetError(f"{train}: every item is labelled {oos_label!r}; nothing to learn")
    if val_data is not None:
        check_labels(val_data, known, out_of_scope_label=oos_label, against="the training labels")
    root = environment.cache_dir()
    encoder = build_encoder(MiniLMEncoderConfig(), root)
    cache = EmbeddingCache(root / "embeddings.sqlite")
    try:
        with Spinner(f"embedding {len(train_data)} training items"):
            return exemplar_router_from_data(
                encoder,
                train_data,
                val_data,
                oos_label=oos_label,
                neighbours=neighbours,
                objective=objective,  # type: ignore[arg-type]
                cache=cache,
            )
    finally:
        cache.close()


def _run_eval(router: Router, test_data: Any, oos_label: str, latency_requests: int) -> Any:

    from skillswitch.evals.intents import evaluate_router

    with progress_bar() as progress:
        task = progress.add_task("scoring test items", total=len(test_data))
        return evaluate_router(
            router,
            test_data,
            oos_label=oos_label,
            latency_requests=latency_requests,
            progress=lambda done, _total: progress.update(task, completed=done),
        )


def _print_report(report: Any, source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = report.metrics
    table = Table(title=f"intent routing on {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "in-scope accuracy", f"{metrics.in_scope_accuracy:.4f}  ({metrics.in_scope_items} items)"
    )
    if metrics.oos_recall is not None:
        table.add_row(
            "out-of-scope recall", f"{metrics.oos_recall:.4f}  ({metrics.oos_items} items)"
        )
        table.add_row("out-of-scope precision", f"{metrics.oos_precision:.4f}")
    table.add_row("macro-F1", f"{metrics.macro_f1:.4f}")
    table.add_row("threshold", f"{report.threshold:.4f}")
    calibration = report.calibration
    if calibration is not None:
        table.add_row(
            "calibrated on",
            f"{calibration.in_scope_items}+{calibration.out_of_scope_items} items "
            f"({calibration.objective})",
        )
    latency = report.latency_ms
    table.add_row("routing latency p50 / p99", f"{latency['p50']:.2f} / {latency['p99']:.2f} ms")
    encoder = report.encoder_latency_ms
    table.add_row("encoder latency p50 / p99", f"{encoder['p50']:.2f} / {encoder['p99']:.2f} ms")
    console = Console()
    console.print(table)
    if report.confusions:
        worst = ", ".join(f"{t}→{p} ×{n}" for t, p, n in report.confusions[:6])
        console.print(f"[dim]most frequent confusions: {worst}[/]")
