"""The ``skillswitch`` Typer app and its command groups (the commands register themselves from
their modules, imported by ``skillswitch.cli``)."""

from __future__ import annotations

from typing import Annotated

import typer

from skillswitch.cli.common import setup_logging

__all__ = ["app", "config_app", "eval_app", "fit_app", "tools_app"]

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


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(verbose)
