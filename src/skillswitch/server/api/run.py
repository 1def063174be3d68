"""``skillswitch serve``: the switch of a config on an OpenAI-compatible HTTP server, with its
MCP server over streamable HTTP at ``/mcp``.

>>> serve(load_config("config.yaml"), port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from skillswitch.server.hosting import check_exposure, quiet_second_sigterm

if TYPE_CHECKING:
    from skillswitch.config import Config

__all__ = ["serve"]

logger = logging.getLogger("skillswitch.server.api")


def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_concurrency: int = 256,
    cache_dir: Path | None = None,
    mcp: bool = True,
) -> None:
    """Serve ``config``'s switch until interrupted (SIGINT or SIGTERM), then close it.

    Beyond loopback an API key is required (a ``ConfigError`` otherwise, before anything
    starts); the key is never logged.
    """
    check_exposure(host, api_key)
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
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # uvicorn's records go to the CLI's handler, like ours
        lifespan="on",  # its shutdown closes the switch in the server's event loop
        timeout_graceful_shutdown=5,  # open streams get this long before they are cut
    )
    with quiet_second_sigterm():
        uvicorn.Server(settings).run()
