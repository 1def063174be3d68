"""``skillswitch tools list`` and ``tools call``: the upstream MCP servers' tools."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skillswitch.exceptions import (
    ConfigError,
    RequestError,
)

if TYPE_CHECKING:
    pass

from skillswitch.cli.app import tools_app
from skillswitch.cli.common import (
    ConfigOption,
    escape,
    load_config_or_default,
    reports_errors,
    stderr,
)


def _hub(config: ConfigOption) -> Any:
    from skillswitch.config import environment
    from skillswitch.tools.configured import build_hub

    loaded = load_config_or_default(config)
    if not loaded.tools.servers:
        raise ConfigError.single("tools.servers", "no MCP servers are configured")
    return build_hub(loaded.tools.servers, environment.cache_dir(loaded.router.cache_dir))


@tools_app.command("list")
@reports_errors
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
        table.add_row(tool.public_name, escape(tool.description[:120]), flags)
    console = Console()
    console.print(table)
    for server in health:
        problem = f" ({escape(server['last_error'])})" if server.get("last_error") else ""
        console.print(f"{server['server']}: {server['state']}, {server['tools']} tools{problem}")


@tools_app.command("call")
@reports_errors
def tools_call(
    name: Annotated[str, typer.Argument(help="The tool's name, server__tool.")],
    arguments: Annotated[str, typer.Option("--args", help="Arguments as a JSON object.")] = "{}",
    config: ConfigOption = None,
) -> None:
    """Call one upstream tool and print its result (exit 1 when the result is an error)."""
    for option, value in (("the tool's name", name), ("--args", arguments)):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestError(
                f"{option} holds bytes that are not valid UTF-8 (at character {exc.start}); "
                "send UTF-8 text"
            ) from None
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
        stderr().print(f"[bold red]tool error:[/] {escape(result.text)}")
        raise typer.Exit(1)
    typer.echo(result.text)
