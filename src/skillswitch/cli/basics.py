"""``skillswitch route``, ``demo`` and ``warmup``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from skillswitch.router import Router

from skillswitch.cli.app import app
from skillswitch.cli.common import (
    ConfigOption,
    escape,
    load_config_or_default,
    load_router,
    reports_errors,
)


@app.command()
@reports_errors
def route(
    text: Annotated[str, typer.Argument(help="The request to route; '-' reads it from stdin.")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Decide which skills a request needs (or that it is out of scope)."""
    request: str | bytes = sys.stdin.buffer.read() if text == "-" else text
    decision = load_router(config).route(request)
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)  # a pipe gets whole lines, not 80 wide
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


_DEMO_TABLE_WIDTH = 100
"""Narrower terminals get the demo as one block per request instead of a table."""


@app.command()
@reports_errors
def demo(config: ConfigOption = None) -> None:
    """Route ~20 varied built-in requests, show each decision, and answer those whose skill
    has an expert (the default config's math, unit and time skills: the builtin tools)."""
    import anyio
    from rich.console import Console
    from rich.table import Table

    from skillswitch.demo import DEMO_REQUESTS
    from skillswitch.switch import Switch

    switch = Switch.from_config(load_config_or_default(config))
    router = switch.router
    for text in DEMO_REQUESTS[:3]:
        router.route(text)  # warm-up, so the table shows steady-state latency

    async def answer_all() -> list[str]:
        async with switch:
            return [await _demo_answer(switch, text) for text in DEMO_REQUESTS]

    answers = anyio.run(answer_all)
    rows = []
    for text, answer in zip(DEMO_REQUESTS, answers, strict=True):
        decision = router.route(text)
        if decision.out_of_scope:
            best = decision.candidates[0]
            skills = [(f"[dim]nearest: {best.skill}[/]", f"[dim]{best.score:.3f}[/]")]
            verdict = "[yellow]reject (out of scope)[/]"
        else:
            skills = [(s.skill, f"{s.score:.3f}") for s in decision.skills]
            count = len(decision.skills)
            verdict = "[green]route[/]" if count == 1 else f"[green]route to {count} skills[/]"
        rows.append((text, skills, verdict, f"{decision.timing.total_ms:.1f}", answer))
    console = Console()
    if console.width >= _DEMO_TABLE_WIDTH:
        table = Table(title="skillswitch demo: routing decisions and answers", show_lines=False)
        table.add_column("request", max_width=50)
        table.add_column("skills")
        table.add_column("scores", justify="right")
        table.add_column("decision")
        table.add_column("ms", justify="right")
        table.add_column("answer", max_width=40, overflow="fold")
        for text, skills, verdict, ms, answer in rows:
            names = "\n".join(name for name, _ in skills)
            table.add_row(text, names, "\n".join(score for _, score in skills), verdict, ms, answer)
        console.print(table)
    else:  # a narrow terminal squeezes a six-column table to a letter per line: one block each
        console.print("[bold]skillswitch demo: routing decisions and answers[/]")
        for text, skills, verdict, ms, answer in rows:
            found = ", ".join(f"{name} {score}" for name, score in skills)
            block = f"\n{escape(text)}\n  {found}: {verdict}, {ms} ms\n  -> {answer}"
            console.print(block, soft_wrap=True)  # the terminal wraps whole words
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
        return f"[red]no answer:[/] {escape(exc.reasons())}"
    if answer.out_of_scope:
        return "[dim](declined)[/]"
    dispatch = answer.trace.dispatch
    answered = [r.expert for r in dispatch.results if r.reply is not None] if dispatch else []
    experts = ", ".join(answered or [e.expert for e in answer.trace.selections])
    return f"{escape(answer.text)} [dim]({experts})[/]"


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
@reports_errors
def warmup(config: ConfigOption = None) -> None:
    """Export the encoder and embed the config's examples into the cache now."""
    import time

    started = time.perf_counter()
    router = load_router(config)
    typer.echo(
        f"ready in {time.perf_counter() - started:.1f}s: {len(router.skills)} skills, "
        f"encoder {router.encoder.name}"
    )


# --- config ------------------------------------------------------------------------------
