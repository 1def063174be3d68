"""The ``skillswitch`` command line.

Every command turns skillswitch's own errors into one readable line on stderr and a non-zero
exit (2 for a mistake in the input, 1 for a failure at run time); tracebacks are for bugs only.
Heavy modules are imported inside commands so ``skillswitch route`` starts fast.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from skillswitch.exceptions import (
    ArtifactError,
    ConfigError,
    DatasetError,
    MissingDependencyError,
    RequestError,
    SkillSwitchError,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from skillswitch.config import Config
    from skillswitch.router import Router

__all__ = ["app", "main"]

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="skillswitch",
    help="Route LLM requests by skill to specialist experts and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect and validate config files.", no_args_is_help=True)
fit_app = typer.Typer(
    help="Train classifiers and profiles from labelled data.", no_args_is_help=True
)
eval_app = typer.Typer(help="Score routers on labelled data.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(fit_app, name="fit")
app.add_typer(eval_app, name="eval")
tools_app = typer.Typer(
    help="The upstream MCP servers' tools (tools.servers).", no_args_is_help=True
)
app.add_typer(tools_app, name="tools")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $SKILLSWITCH_CONFIG, else the embedded default config).",
        envvar="SKILLSWITCH_CONFIG",
        dir_okay=False,
    ),
]

_USER_ERRORS = (ConfigError, DatasetError, RequestError, ArtifactError, MissingDependencyError)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _reports_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Print skillswitch errors as one message (no traceback) and exit with a status code."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except _USER_ERRORS as exc:
            _stderr().print(f"[bold red]error:[/] {_escape(str(exc))}")
            raise typer.Exit(2) from None
        except SkillSwitchError as exc:
            _stderr().print(f"[bold red]failed:[/] {_escape(str(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _stderr().print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _load(config_path: Path | None) -> Config:
    from skillswitch.config import default_config, load_config

    return load_config(config_path) if config_path is not None else default_config()


def _router(config_path: Path | None) -> Router:
    from skillswitch.router import Router

    return Router.from_config(_load(config_path))


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=_stderr(), show_path=False, show_time=False)],
    )
    for noisy in ("httpx", "openai", "httpcore", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    _setup_logging(verbose)


# --- route / demo / warmup -----------------------------------------------------------------


@app.command()
@_reports_errors
def route(
    text: Annotated[str, typer.Argument(help="The request to route; '-' reads it from stdin.")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Decide which skills a request needs (or that it is out of scope)."""
    request: str | bytes = sys.stdin.buffer.read() if text == "-" else text
    decision = _router(config).route(request)
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if decision.out_of_scope:
        console.print(
            f"[bold yellow]{decision.out_of_scope_label}[/]  confidence "
            f"{decision.confidence:.3f} < threshold {decision.threshold:.3f}"
        )
    else:
        skills = ", ".join(f"[bold green]{s.skill}[/] {s.score:.3f}" for s in decision.skills)
        console.print(f"{skills}  (threshold {decision.threshold:.3f})")
    runner_up = ", ".join(f"{s.skill} {s.score:.3f}" for s in decision.candidates[:4])
    console.print(f"[dim]candidates: {runner_up}[/]")
    console.print(
        f"[dim]{decision.encoder} · {decision.classifier} · {decision.timing.total_ms:.1f} ms"
        f"{' · routed on head+tail of a long request' if decision.truncated else ''}[/]"
    )


@app.command()
@_reports_errors
def demo(config: ConfigOption = None) -> None:
    """Route ~20 varied built-in requests, show each decision, and answer those whose skill
    has an expert (the default config's math, unit and time skills: the builtin tools)."""
    import anyio
    from rich.console import Console
    from rich.table import Table

    from skillswitch.demo import DEMO_REQUESTS
    from skillswitch.switch import Switch

    switch = Switch.from_config(_load(config))
    router = switch.router
    for text in DEMO_REQUESTS[:3]:
        router.route(text)  # warm-up, so the table shows steady-state latency
    table = Table(title="skillswitch demo: routing decisions and answers", show_lines=False)
    table.add_column("request", max_width=50)
    table.add_column("skills")
    table.add_column("scores", justify="right")
    table.add_column("decision")
    table.add_column("ms", justify="right")
    table.add_column("answer", max_width=40, overflow="fold")

    async def answer_all() -> list[str]:
        async with switch:
            return [await _demo_answer(switch, text) for text in DEMO_REQUESTS]

    answers = anyio.run(answer_all)
    for text, answer in zip(DEMO_REQUESTS, answers, strict=True):
        decision = router.route(text)
        if decision.out_of_scope:
            best = decision.candidates[0]
            skills, scores = f"[dim]nearest: {best.skill}[/]", f"[dim]{best.score:.3f}[/]"
            verdict = "[yellow]reject (out of scope)[/]"
        else:
            skills = "\n".join(s.skill for s in decision.skills)
            scores = "\n".join(f"{s.score:.3f}" for s in decision.skills)
            count = len(decision.skills)
            verdict = "[green]route[/]" if count == 1 else f"[green]route to {count} skills[/]"
        table.add_row(text, skills, scores, verdict, f"{decision.timing.total_ms:.1f}", answer)
    console = Console()
    console.print(table)
    console.print(
        f"threshold {router.threshold:.3f} ({_calibration_text(router)}); "
        f"encoder {router.encoder.name}; classifier {router.classifier.name}; "
        f"experts: {', '.join(switch.expert_names) or 'none'}"
    )


async def _demo_answer(switch: Any, text: str) -> str:
    from skillswitch.exceptions import ExpertsFailedError, NoExpertError

    try:
        answer = await switch.run(text)
    except NoExpertError:
        return "[dim](no expert configured for this skill)[/]"
    except ExpertsFailedError as exc:
        reasons = "; ".join(str(e).split(": ", 1)[-1] for e in exc.exceptions)
        return f"[red]no answer:[/] {_escape(reasons)}"
    if answer.out_of_scope:
        return "[dim](declined)[/]"
    experts = ", ".join(e.expert for e in answer.trace.selections)
    return f"{_escape(answer.text)} [dim]({experts})[/]"


def _calibration_text(router: Router) -> str:
    calibration = router.calibration
    if calibration is None:
        return "fixed in config or artifact"
    recall = (
        f", out-of-scope recall {calibration.out_of_scope_recall:.2f}"
        if calibration.out_of_scope_recall is not None
        else ""
    )
    return (
        f"calibrated '{calibration.objective}' on {calibration.in_scope_items}+"
        f"{calibration.out_of_scope_items} examples: in-scope accuracy "
        f"{calibration.in_scope_accuracy:.2f}{recall}"
    )


@app.command()
@_reports_errors
def mcp(config: ConfigOption = None) -> None:
    """Serve skillswitch as an MCP server over stdio (tools: ask, route, list_skills,
    find_tools, and the upstream MCP tools as server__tool)."""
    from skillswitch.server.mcp import SkillSwitchMCPServer
    from skillswitch.switch import Switch

    loaded = _load(config)
    switch = Switch.from_config(loaded)
    server = SkillSwitchMCPServer(
        switch, proxy_allow_destructive=loaded.tools.proxy_allow_destructive
    )
    try:
        server.run()  # stdio: stdout carries the protocol, logs go to stderr
    finally:
        switch.close()


@app.command("serve-models")
@_reports_errors
def serve_models_command(
    config: ConfigOption = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME=PATH: serve the model folder PATH as NAME (adds to the config's "
            "inference.models, or replaces the one named NAME). Repeatable.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; beyond loopback needs --api-key-env.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    device: Annotated[
        str | None,
        typer.Option(help="auto, cpu or cuda[:N] (default: the config's inference.device)."),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the API key clients must send as a bearer token.",
        ),
    ] = None,
) -> None:
    """Serve local model folders over an OpenAI-compatible HTTP API (/v1/chat/completions,
    /v1/completions, /v1/embeddings, /v1/models, /healthz)."""
    from skillswitch.config import environment
    from skillswitch.server.models_api.run import serve_models, with_models

    inference = with_models(_load(config).inference, model or [], device=device)
    key = environment.api_key(api_key_env, path="--api-key-env")
    serve_models(inference, host=host, port=port, api_key=key)


@app.command()
@_reports_errors
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; beyond loopback needs --api-key-env.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the API key clients must send as a bearer token.",
        ),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(min=1, help="Requests in flight at once; more get 429.")
    ] = 256,
    mcp: Annotated[
        bool,
        typer.Option(
            "--mcp/--no-mcp",
            help="Serve skillswitch's MCP server over streamable HTTP at /mcp (same key).",
        ),
    ] = True,
) -> None:
    """Serve skillswitch over an OpenAI-compatible HTTP API (/v1/chat/completions with model
    skillswitch, skillswitch/<skill> or an expert's name; /v1/models, /v1/route, /healthz,
    /metrics) and as an MCP server over streamable HTTP at /mcp (tools ask, route, list_skills,
    find_tools and the upstream MCP tools as server__tool; --no-mcp leaves it out). With
    --api-key-env, clients send the key as a bearer token on /v1, /mcp and /metrics."""
    from skillswitch.config import environment
    from skillswitch.server.api.run import serve as serve_api

    key = environment.api_key(api_key_env, path="--api-key-env")
    serve_api(
        _load(config),
        host=host,
        port=port,
        api_key=key,
        max_concurrency=max_concurrency,
        mcp=mcp,
    )


def _hub(config: ConfigOption) -> Any:
    from skillswitch.config import environment
    from skillswitch.tools.configured import build_hub

    loaded = _load(config)
    if not loaded.tools.servers:
        raise ConfigError.single("tools.servers", "no MCP servers are configured")
    return build_hub(loaded.tools.servers, environment.cache_dir(loaded.router.cache_dir))


@tools_app.command("list")
@_reports_errors
def tools_list(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Start the configured servers and list their tools (and each server's state)."""
    hub = _hub(config)
    try:
        tools, health = hub.tools_sync(), hub.health_sync()
    finally:
        hub.close()
    if as_json:
        payload = {"tools": [t.to_dict() for t in tools], "servers": health}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="MCP tools")
    for column in ("name", "description", "annotations"):
        table.add_column(column, overflow="fold")
    for tool in tools:
        hints = tool.hints
        flags = "read-only" if hints.read_only else "destructive" if hints.destructive else "writes"
        table.add_row(tool.public_name, _escape(tool.description[:120]), flags)
    console = Console()
    console.print(table)
    for server in health:
        problem = f" ({_escape(server['last_error'])})" if server.get("last_error") else ""
        console.print(f"{server['server']}: {server['state']}, {server['tools']} tools{problem}")


@tools_app.command("call")
@_reports_errors
def tools_call(
    name: Annotated[str, typer.Argument(help="The tool's name, server__tool.")],
    arguments: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    config: ConfigOption = None,
) -> None:
    """Call one upstream tool and print its result (exit 1 when the result is an error)."""
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise RequestError(f"--args is not JSON ({exc.msg}); pass an object, e.g. '{{}}'") from None
    if not isinstance(parsed, dict):
        raise RequestError('--args must be a JSON object, e.g. \'{"timezone": "UTC"}\'')
    hub = _hub(config)
    try:
        result = hub.call_sync(name, parsed)
    finally:
        hub.close()
    if result.is_error:
        _stderr().print(f"[bold red]tool error:[/] {_escape(result.text)}")
        raise typer.Exit(1)
    typer.echo(result.text)


@app.command()
@_reports_errors
def warmup(config: ConfigOption = None) -> None:
    """Export the encoder and embed the config's examples into the cache now."""
    import time

    started = time.perf_counter()
    router = _router(config)
    typer.echo(
        f"ready in {time.perf_counter() - started:.1f}s: {len(router.skills)} skills, "
        f"encoder {router.encoder.name}"
    )


# --- config ------------------------------------------------------------------------------


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file."""
    from skillswitch.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))


@config_app.command("check")
@_reports_errors
def config_check(
    file: Annotated[Path, typer.Argument(help="The YAML config to validate.")],
) -> None:
    """Validate a config file and summarise it."""
    from skillswitch.config import load_config

    loaded = load_config(file)
    typer.echo(
        f"{file}: valid ({len(loaded.skills)} skills, {len(loaded.out_of_scope.examples)} "
        f"out-of-scope examples, encoder {loaded.router.encoder.kind}, classifier "
        f"{loaded.router.classifier.kind}, {len(loaded.experts)} experts, "
        f"{len(loaded.tools.servers)} tool servers)"
    )


@config_app.command("show")
@_reports_errors
def config_show(config: ConfigOption = None) -> None:
    """Print the effective config (the embedded default when no file is given) as YAML."""
    import yaml

    data = _load(config).model_dump(mode="json")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def main() -> None:
    """Console-script entry point."""
    app()


# --- fit -----------------------------------------------------------------------------------


@fit_app.command("intents")
@_reports_errors
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
    fitted = _fit(train, val, out, oos_label, method, epochs, max_steps, objective, seed, threads)
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
@_reports_errors
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
    config: ConfigOption = None,
) -> None:
    """Build expert profiles (global strength, competence per skill) for recruitment; with
    --predictions also a learned answer combiner (dispatch.combine: learned)."""
    import itertools
    from dataclasses import replace

    from skillswitch.router.combiner import combiner_examples, fit_combiner
    from skillswitch.router.profiles import fit_profiles
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
    profiles = fit_profiles(data, prior=prior, aggregator_results=judged)
    combiner_note = ""
    if data.answers is not None:
        combiner = fit_combiner(data.experts, combiner_examples(profiles, data, stages))
        profiles = replace(profiles, combiner=combiner.to_dict())
        combiner_note = f"; learned combiner for cascade {stages}"
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


def _route_questions(data: Any, config_path: Path | None) -> Any:
    """Label each validation question with the router's best skill for its text."""
    texts = data.texts()
    missing = sum(text is None for text in texts)
    if missing:
        raise DatasetError(
            f"{data.source}: {missing} question(s) have neither a category nor text to route; "
            "give --questions with the question texts"
        )
    router = _router(config_path)
    with _progress(f"routing {len(texts)} validation questions"):
        decisions = router.route_many(list(texts))
    return data.with_skills([None if d.out_of_scope else d.label for d in decisions])


def _fit(
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
    with _progress_bar() as bar:
        tasks: dict[str, Any] = {}

        logged: dict[str, int] = {}
        log = logging.getLogger("skillswitch.fit")

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if not bar.console.is_terminal:  # a log file or CI: a line every 10%
                tenth = 10 * done // max(total, 1)
                if tenth > logged.get(stage, -1):
                    logged[stage] = tenth
                    log.info("%s: %d/%d", stage, done, total)

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

_METHODS = ("exemplar", "linear", "finetune")


@eval_app.command("intents")
@_reports_errors
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
@_reports_errors
def eval_tools(
    queries: Annotated[
        Path,
        typer.Option(
            help="LiveMCPBench annotations (all_annotations.json, with --catalog) or a BFCL "
            "question file (each query carries its candidate functions)."
        ),
    ],
    catalog: Annotated[
        Path | None,
        typer.Option(help="LiveMCPBench tools.json: the MCP catalogue the queries search."),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(help="BFCL gold calls (default: possible_answer/ next to --queries)."),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Cut-off for recall and hits.")] = 10,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON.")
    ] = None,
) -> None:
    """Score tool retrieval: recall@k, any gold tool in the top 5 / k, MRR, top-1, and how
    often "no tool applies" is decided (BFCL irrelevance files: all queries should be)."""
    from skillswitch.config import MiniLMEncoderConfig, environment
    from skillswitch.evals.tools import (
        detect_tool_format,
        evaluate_retrieval,
        load_bfcl,
        load_livemcpbench,
    )
    from skillswitch.router.encoders import EmbeddingCache, build_encoder

    if detect_tool_format(queries) == "bfcl":
        if catalog is not None:
            raise DatasetError(
                f"{queries} is a BFCL file whose queries carry their own candidate functions; "
                "leave out --catalog"
            )
        data = load_bfcl(queries, answers)
    else:
        if catalog is None:
            raise DatasetError(
                f"{queries} holds LiveMCPBench tasks; give the catalogue they search with "
                "--catalog (tools.json)"
            )
        if detect_tool_format(catalog) != "livemcpbench":
            raise DatasetError(f"--catalog {catalog} is not a LiveMCPBench tools.json")
        data = load_livemcpbench(catalog, queries)
    root = environment.cache_dir()
    encoder = build_encoder(MiniLMEncoderConfig(), root)
    cache = EmbeddingCache(root / "embeddings.sqlite")
    try:
        with _progress(f"ranking tools for {len(data)} queries"):
            report = evaluate_retrieval(data, encoder, k=k, cache=cache)
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
    table.add_row("relevance threshold", f"{report.threshold:.4f}")
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
            _fit(train, val, folder, oos_label, method, None, None, objective, 0)
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
        with _progress(f"embedding {len(train_data)} training items"):
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

    with _progress_bar() as progress:
        task = progress.add_task("scoring test items", total=len(test_data))
        return evaluate_router(
            router,
            test_data,
            oos_label=oos_label,
            latency_requests=latency_requests,
            progress=lambda done, _total: progress.update(task, completed=done),
        )


def _progress_bar() -> Progress:
    """A transient progress bar on stderr (stdout stays clean for --json users)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        transient=True,
    )


class _progress:
    """A spinner on stderr for work without a known length."""

    def __init__(self, message: str) -> None:
        from rich.status import Status

        self._status = Status(message, console=_stderr())

    def __enter__(self) -> None:
        self._status.start()

    def __exit__(self, *_: object) -> None:
        self._status.stop()


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
