"""``skillswitch serve``: the switch of a config on an OpenAI-compatible HTTP server, with its
MCP server over streamable HTTP at ``/mcp``.

>>> serve(load_config("config.yaml"), port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from skillswitch.server.browsers import check_cors_origins
from skillswitch.server.hosting import check_exposure, quiet_second_sigterm

if TYPE_CHECKING:
    from skillswitch.config import Config

__all__ = ["serve"]

logger = logging.getLogger("skillswitch.server.api")


# The HTTP client under the experts (the openai SDK's httpx2) logs every upstream call at INFO:
# ~14% of the server's CPU per request through the CLI's handler (benchmarks/http_overhead.py).
_PER_REQUEST_LOGGERS = ("httpx2", "httpx", "httpcore2", "httpcore")


def _quiet_per_request_loggers() -> None:
    """Warnings and errors only from the loggers that write a line per upstream call, unless
    their level was set already (by the caller's logging config)."""
    for name in _PER_REQUEST_LOGGERS:
        named = logging.getLogger(name)
        if named.level == logging.NOTSET:
            named.setLevel(logging.WARNING)


def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_concurrency: int = 1024,
    cache_dir: Path | None = None,
    mcp: bool = True,
    rate_limit: float | None = None,
    cors_origins: Sequence[str] = (),
) -> None:
    """Serve ``config``'s switch until interrupted (SIGINT or SIGTERM), then close it.

    Beyond loopback an API key is required (a ``ConfigError`` otherwise, before anything
    starts); the key is never logged.
    """
    check_exposure(host, api_key)
    origins = check_cors_origins(cors_origins, api_key)  # before the switch is built
    import uvicorn

    from skillswitch.server.api.app import create_app
    from skillswitch.switch import Switch

    switch = Switch.from_config(config, cache_dir=cache_dir)
    app = create_app(
        switch,
        api_key=api_key,
        max_concurrency=max_concurrency,
        mcp=mcp,
        proxy_allow_destructive=config.tools.proxy_allow_destructive,
        rate_limit=rate_limit,
        cors_origins=origins,
    )
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    logger.info(
        "serving %d skills and %d experts on %s/v1%s%s",
        len(switch.router.skills),
        len(switch.expert_names),
        base,
        " (API key required)" if api_key else "",
        f"; MCP (streamable HTTP) on {base}/mcp" if mcp else "; MCP over HTTP off (--no-mcp)",
    )
    _quiet_per_request_loggers()
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # uvicorn's records go to the CLI's handler, like ours
        # One INFO line per request through the CLI's rich handler cost ~10% of the server's
        # CPU per request (benchmarks/http_overhead.py); /metrics counts every request.
        access_log=False,
        lifespan="on",  # its shutdown closes the switch in the server's event loop
        timeout_graceful_shutdown=5,  # open streams get this long before they are cut
    )
    with quiet_second_sigterm():
        uvicorn.Server(settings).run()
