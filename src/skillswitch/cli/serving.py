"""``skillswitch mcp``, ``serve`` and ``serve-models``: skillswitch behind MCP and HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from skillswitch.cli.app import app
from skillswitch.cli.common import (
    ConfigOption,
    load_config_or_default,
    reports_errors,
    stderr,
)

ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="Environment variable holding the API key clients must send as a bearer token.",
    ),
]
CorsOriginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--cors-origin",
        help="A web page origin (scheme://host[:port]) that may call this server from a "
        "browser; * for any (needs --api-key-env). Repeatable.",
    ),
]


@app.command()
@reports_errors
def mcp(config: ConfigOption = None) -> None:
    """Serve skillswitch as an MCP server over stdio (tools: ask, route, list_skills,
    find_tools, and the upstream MCP tools as server__tool)."""
    import anyio

    from skillswitch.server.mcp import SkillSwitchMCPServer
    from skillswitch.switch import Switch

    loaded = load_config_or_default(config)
    switch = Switch.from_config(loaded)
    server = SkillSwitchMCPServer(
        switch, proxy_allow_destructive=loaded.tools.proxy_allow_destructive
    )

    async def serve() -> None:
        # The switch closes in the loop that served: its experts' connections live there (a
        # close in a new loop left them to the garbage collector, which logged "Event loop is
        # closed" tracebacks at exit).
        async with switch:
            await server.run_stdio_async()  # stdout carries the protocol, logs go to stderr

    anyio.run(serve)


@app.command("serve-models")
@reports_errors
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
    api_key_env: ApiKeyEnvOption = None,
    cors_origin: CorsOriginOption = None,
) -> None:
    """Serve local model folders over an OpenAI-compatible HTTP API (/v1/chat/completions,
    /v1/completions, /v1/embeddings, /v1/models, /healthz)."""
    from skillswitch.config import environment
    from skillswitch.server.models_api.run import serve_models, with_models

    inference = with_models(load_config_or_default(config).inference, model or [], device=device)
    key = environment.api_key(api_key_env, path="--api-key-env")
    _check_address(host, port, key)
    with _startup_failure_reported():
        serve_models(inference, host=host, port=port, api_key=key, cors_origins=cors_origin or ())


@app.command()
@reports_errors
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; beyond loopback needs --api-key-env.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8000,
    api_key_env: ApiKeyEnvOption = None,
    max_concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Requests in flight at once (an open stream counts until it ends); more get 429.",
        ),
    ] = 1024,
    mcp: Annotated[
        bool,
        typer.Option(
            "--mcp/--no-mcp",
            help="Serve skillswitch's MCP server over streamable HTTP at /mcp (same key).",
        ),
    ] = True,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Requests per second per client address (bursts of twice that); more get 429.",
        ),
    ] = None,
    cors_origin: CorsOriginOption = None,
) -> None:
    """Serve skillswitch over an OpenAI-compatible HTTP API (/v1/chat/completions with model
    skillswitch, skillswitch/<skill> or an expert's name; /v1/models, /v1/route, /healthz,
    /metrics) and as an MCP server over streamable HTTP at /mcp (tools ask, route, list_skills,
    find_tools and the upstream MCP tools as server__tool; --no-mcp leaves it out). With
    --api-key-env, clients send the key as a bearer token on /v1, /mcp and /metrics."""
    from skillswitch.config import environment
    from skillswitch.server.api.run import serve as serve_api

    key = environment.api_key(api_key_env, path="--api-key-env")
    loaded = load_config_or_default(config)
    _check_address(host, port, key)
    with _startup_failure_reported():
        serve_api(
            loaded,
            host=host,
            port=port,
            api_key=key,
            max_concurrency=max_concurrency,
            mcp=mcp,
            rate_limit=rate_limit,
            cors_origins=cors_origin or (),
        )


def _check_address(host: str, port: int, key: str | None) -> None:
    from skillswitch.server.hosting import check_exposure, check_listen

    check_exposure(host, key)  # the security refusal first, whatever else is wrong
    check_listen(host, port)


@contextmanager
def _startup_failure_reported() -> Iterator[None]:
    """uvicorn exits 3 when it cannot start (its reason logged just before): the documented
    exit status of a failure at run time is 1, with one line saying so."""
    try:
        yield
    except SystemExit as exc:
        if exc.code != 3:
            raise
        stderr().print("[bold red]failed:[/] the server could not start (the reason is above)")
        raise typer.Exit(1) from None
