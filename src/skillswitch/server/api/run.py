"""``skillswitch serve``: the switch of a config on an OpenAI-compatible HTTP server.

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
    app = create_app(switch, api_key=api_key, max_concurrency=max_concurrency)
    logger.info(
        "serving %d skills and %d experts on http://%s:%d/v1%s",
        len(switch.router.skills),
        len(switch.expert_names),
        host if ":" not in host else f"[{host}]",
        port,
        " (API key required)" if api_key else "",
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
