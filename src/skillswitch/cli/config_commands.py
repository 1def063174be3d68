"""``skillswitch config schema``, ``check`` and ``show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass

from skillswitch.cli.app import config_app
from skillswitch.cli.common import (
    ConfigOption,
    load_config_or_default,
    reports_errors,
)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file."""
    from skillswitch.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))


@config_app.command("check")
@reports_errors
def config_check(
    file: Annotated[Path, typer.Argument(help="The YAML config to validate.")],
    build: Annotated[
        bool,
        typer.Option(
            "--build/--no-build",
            help="Also build what serve would at start-up (router, experts, profiles, local "
            "model folders), so that a config that would fail there fails here.",
        ),
    ] = True,
) -> None:
    """Validate a config file, build what it declares (as serve would at start-up, without
    calling any expert or starting tool servers) and summarise it."""
    from skillswitch.config import load_config

    loaded = load_config(file)
    if build:
        from skillswitch.switch import Switch

        Switch.from_config(loaded).close()
    typer.echo(
        f"{file}: valid{' and builds' if build else ''} ({len(loaded.skills)} skills, "
        f"{len(loaded.out_of_scope.examples)} out-of-scope examples, encoder "
        f"{loaded.router.encoder.kind}, classifier {loaded.router.classifier.kind}, "
        f"{len(loaded.experts)} experts, {len(loaded.tools.servers)} tool servers)"
    )


@config_app.command("show")
@reports_errors
def config_show(config: ConfigOption = None) -> None:
    """Print the effective config (the embedded default when no file is given) as YAML."""
    import yaml

    data = load_config_or_default(config).model_dump(mode="json")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
