"""The OpenAI-compatible HTTP app of skillswitch (``skillswitch serve``).

Services live on ``app.state`` (one per endpoint, built here); nothing is read or built when the
module is imported.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from skillswitch.server.api.chat_completions.route import ChatCompletionsFastPath
from skillswitch.server.api.chat_completions.route import router as chat_router
from skillswitch.server.api.chat_completions.serving import ChatCompletionsServing
from skillswitch.server.api.health.route import router as health_router
from skillswitch.server.api.mcp_http import MCP_PATH, mcp_over_http
from skillswitch.server.api.metrics.collectors import Metrics
from skillswitch.server.api.metrics.middleware import MetricsMiddleware
from skillswitch.server.api.metrics.route import router as metrics_router
from skillswitch.server.api.models.route import router as models_router
from skillswitch.server.api.models.serving import ModelsServing
from skillswitch.server.api.playground.route import router as playground_router
from skillswitch.server.api.routing.route import router as routing_router
from skillswitch.server.api.routing.serving import RouteServing
from skillswitch.server.api.targets import Targets
from skillswitch.server.browsers import HeadAsGet, allow_cross_origin, check_cors_origins
from skillswitch.server.guards import RequestGuard
from skillswitch.server.openai_errors import install_error_handlers
from skillswitch.server.rate_limit import RateLimiter

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES = 4 * 2**20


def create_app(
    switch: Switch,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrency: int = 1024,
    mcp: bool = True,
    proxy_allow_destructive: Sequence[str] = (),
    rate_limit: float | None = None,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """An OpenAI-compatible API over ``switch``: ``/v1/chat/completions``, ``/v1/models``,
    ``/v1/route``, ``/healthz`` and ``/metrics``; and, unless ``mcp`` is false, skillswitch's
    MCP server over streamable HTTP at ``/mcp`` (tools ``ask``, ``route``, ``list_skills``,
    ``find_tools`` and the upstream tools as ``server__tool``; ``proxy_allow_destructive``
    is the config's ``tools.proxy_allow_destructive``).

    ``api_key``: clients must send it as a bearer token (``/v1/*``, ``/mcp`` and
    ``/metrics``; ``/healthz`` stays open). Bodies over ``max_body_bytes`` get 413; requests
    beyond ``max_concurrency`` in flight get 429 (on ``/mcp`` as JSON-RPC errors, which MCP
    clients show). ``rate_limit``: requests per second per client address (bursts of twice
    that), beyond which 429 with Retry-After. Without a key, ``/mcp`` answers only requests
    addressed to a loopback host (the
    ``Host`` header) from a loopback page or one of ``cors_origins`` (the ``Origin`` header),
    against DNS rebinding. ``cors_origins``: web pages of these origins (``scheme://host[:port]``,
    or ``*`` with a key) may call the API and ``/mcp`` from a browser (CORS). ``HEAD`` is
    answered as ``GET`` without the body. The app's
    lifespan runs the MCP sessions and closes ``switch`` when the server stops, in the
    server's event loop, where its connections live (run it with lifespan on, uvicorn's
    default).

    >>> switch = Switch.from_config("config.yaml")  # doctest: +SKIP
    >>> uvicorn.run(create_app(switch), port=8000)  # doctest: +SKIP
    """
    for name, value in (("max_body_bytes", max_body_bytes), ("max_concurrency", max_concurrency)):
        if value < 1:
            raise ValueError(f"{name} is {value}; give 1 or more")
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key is empty; give a key, or None to serve without one")
    limiter = None if rate_limit is None else RateLimiter(rate_limit)
    origins = check_cors_origins(cors_origins, api_key, where="cors_origins")
    from skillswitch import __version__

    mounted = (
        mcp_over_http(
            switch,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            proxy_allow_destructive=proxy_allow_destructive,
            origins=origins,
        )
        if mcp
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with AsyncExitStack() as stack:
                if mounted is not None:  # an added route gets no lifespan of its own
                    await stack.enter_async_context(mounted.server.session_manager.run())
                yield
        finally:
            await switch.aclose()

    app = FastAPI(
        title="skillswitch",
        version=__version__,
        summary="Requests routed by skill to specialist experts, OpenAI-compatible.",
        lifespan=lifespan,
    )
    targets = Targets(switch)
    metrics = Metrics()
    app.state.switch = switch
    app.state.metrics = metrics
    app.state.chat_completions = ChatCompletionsServing(switch, targets, metrics)
    app.state.models = ModelsServing(targets, created=int(time.time()))
    app.state.routing = RouteServing(switch)
    for router in (
        chat_router,
        models_router,
        routing_router,
        health_router,
        metrics_router,
        playground_router,
    ):
        app.include_router(router)
    app.state.mcp_server = mounted.server if mounted is not None else None
    if mounted is not None:
        app.router.routes.extend(mounted.routes)
    install_error_handlers(app)
    app.add_middleware(HeadAsGet, skip=(MCP_PATH,))
    # Behind the guard and the metrics, like the route it answers for.
    app.add_middleware(ChatCompletionsFastPath, serving=app.state.chat_completions)
    app.add_middleware(
        RequestGuard,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        max_concurrency=max_concurrency,
        protected_prefix=("/v1", "/metrics", MCP_PATH),
        jsonrpc_prefix=MCP_PATH,
        rate_limit=limiter,
        loopback_only=api_key is None,
        origins=origins,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # counts refusals too
    allow_cross_origin(app, origins)  # outermost
    return app
