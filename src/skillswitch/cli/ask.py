"""``skillswitch ask``: one request end to end (route, recruit, dispatch, aggregate) from the
shell, the answer on stdout and how it was made on stderr."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skillswitch.cli.app import app
from skillswitch.cli.common import (
    ConfigOption,
    escape,
    load_config_or_default,
    reports_errors,
    stderr,
)
from skillswitch.exceptions import ExpertDeclinedError, ExpertsFailedError

if TYPE_CHECKING:
    from skillswitch.trace import Answer


@app.command()
@reports_errors
def ask(
    text: Annotated[str, typer.Argument(help="The request; '-' reads it from stdin.")],
    config: ConfigOption = None,
    skill: Annotated[
        str | None, typer.Option("--skill", help="Skip the router: send it to this skill.")
    ] = None,
    expert: Annotated[
        str | None, typer.Option("--expert", help="Skip routing: this expert alone answers.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer and its trace as JSON.")
    ] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print the answer as it is written.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No summary of the route on stderr.")
    ] = False,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature", help="Every answering model's temperature (0 to 2), over its own."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", help="Most tokens each answering model may write."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of every answering model's sampling.")
    ] = None,
    response_format: Annotated[
        str | None,
        typer.Option(
            "--response-format",
            help="Answer in JSON: 'json_object', or a .json file holding a JSON Schema (named "
            "after the file) or a whole OpenAI response_format object.",
        ),
    ] = None,
) -> None:
    """Answer a request: route it by skill, ask the experts and tools it needs, combine their
    answers. The answer goes to stdout; the route, the experts and the time to stderr."""
    import anyio

    from skillswitch.agents.messages import TextDelta, parse_messages
    from skillswitch.agents.sampling import parse_sampling
    from skillswitch.switch import Switch
    from skillswitch.trace import Answer

    if as_json and stream:
        raise typer.BadParameter("--json prints the whole answer at the end; drop --stream")
    if logging.getLogger().level > logging.DEBUG:  # without --verbose: no tool-server chatter
        logging.getLogger("skillswitch.tools").setLevel(logging.WARNING)
    # Checked (and stdin decoded, strictly) before any expert or tool server starts.
    messages = list(parse_messages(sys.stdin.buffer.read() if text == "-" else text))
    asked = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    sampling = parse_sampling({**asked, "response_format": _response_format(response_format)})
    switch = Switch.from_config(load_config_or_default(config))
    streamed = 0  # characters of the answer written so far

    async def answer() -> Answer:
        nonlocal streamed
        async with switch:
            if not stream:
                return await switch.run(messages, skill=skill, expert=expert, sampling=sampling)
            final: Answer | None = None
            events = switch.stream(messages, skill=skill, expert=expert, sampling=sampling)
            async for event in events:
                if isinstance(event, TextDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                    streamed += len(event.text)
                elif isinstance(event, Answer):
                    final = event
            assert final is not None  # a stream always ends with its Answer
            return final

    try:
        result = anyio.run(answer)
    except ExpertsFailedError as exc:
        _end_incomplete(streamed)
        _report_failures(exc)
        raise typer.Exit(1) from None
    except BaseException:  # an error reported by the command's handler, or Ctrl-C
        _end_incomplete(streamed)
        raise
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    if stream:
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        typer.echo(result.text)
    if not quiet:
        _summarise(result)


def _response_format(given: str | None) -> object:
    """``--response-format`` as OpenAI's object: a name (``json_object``, ``text``) as is; a
    file's JSON as is when it is a response_format object, else as the JSON Schema of one
    named after the file (``parse_sampling`` checks either)."""
    if given is None:
        return None
    if given in ("json_object", "text"):
        return {"type": given}
    path = Path(given)
    if path.suffix.lower() != ".json" and not path.exists():
        raise typer.BadParameter(
            f"{given!r} is neither 'json_object' nor a .json file; give 'json_object' or the "
            "path of a JSON Schema file",
            param_hint="--response-format",
        )
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise typer.BadParameter(
            f"cannot read {given}: {why}", param_hint="--response-format"
        ) from None
    if isinstance(found, dict) and found.get("type") in ("text", "json_object", "json_schema"):
        return found
    name = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": found}}


def _end_incomplete(streamed: int) -> None:
    """After part of a streamed answer: end its line, and say on stderr that it is cut short
    (a reader of stdout alone sees the exit status)."""
    if streamed:
        sys.stdout.write("\n")
        sys.stdout.flush()
        typer.echo(
            f"the answer above is incomplete: {streamed} characters were written before the "
            "failure below",
            err=True,
        )


def _summarise(answer: Answer) -> None:
    trace = answer.trace
    decision = trace.decision
    if decision.out_of_scope:
        best = decision.candidates[0] if decision.candidates else None
        nearest = f"nearest {best.skill} {best.score:.3f}, " if best else ""
        route = f"out of scope ({nearest}threshold {decision.threshold:.3f})"
    else:
        route = ", ".join(f"{s.skill} {s.score:.3f}" for s in decision.skills)
    parts = [route]
    dispatch = trace.dispatch
    if dispatch is not None:
        answered = [r.expert for r in dispatch.results if r.reply is not None]
        declined = [r.expert for r in dispatch.results if isinstance(r.error, ExpertDeclinedError)]
        failed = [
            r.expert for r in dispatch.results if r.reply is None and r.expert not in declined
        ]
        parts.append("-> " + (", ".join(answered) or "no expert"))
        if declined:
            parts.append(f"declined: {', '.join(declined)}")
        if failed:
            parts.append(f"failed: {', '.join(failed)}")
    if trace.aggregation is not None and trace.aggregation.mode != "pass_through":
        parts.append(trace.aggregation.mode.replace("_", " "))
    usage = trace.usage
    if usage.prompt_tokens or usage.completion_tokens:
        parts.append(f"{usage.prompt_tokens}+{usage.completion_tokens} tokens")
    if usage.cost:
        parts.append(f"${usage.cost:.6f}")
    parts.append(f"{trace.total_ms:.1f} ms")
    stderr().print(f"[dim]{escape(' · '.join(parts))}[/]")


def _report_failures(exc: ExpertsFailedError) -> None:
    console = stderr()
    console.print(f"[bold red]failed:[/] {escape(exc.message)}")
    for error in exc.exceptions:
        console.print(f"  {escape(str(error))}")
