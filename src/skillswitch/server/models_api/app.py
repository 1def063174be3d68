"""The OpenAI-compatible HTTP app of the local inference backend (``skillswitch serve-models``).

Services live on ``app.state`` (one per endpoint, built here); nothing is read or built when the
module is imported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import FastAPI

from skillswitch.server.browsers import HeadAsGet, allow_cross_origin, check_cors_origins
from skillswitch.server.guards import RequestGuard
from skillswitch.server.models_api.chat_completions.route import router as chat_router
from skillswitch.server.models_api.chat_completions.serving import ChatCompletionsServing
from skillswitch.server.models_api.completions.route import router as completions_router
from skillswitch.server.models_api.completions.serving import CompletionsServing
from skillswitch.server.models_api.embeddings.route import router as embeddings_router
from skillswitch.server.models_api.embeddings.serving import EmbeddingsServing
from skillswitch.server.models_api.health.route import router as health_router
from skillswitch.server.models_api.models.route import router as models_router
from skillswitch.server.models_api.models.serving import ModelsServing
from skillswitch.server.openai_errors import install_error_handlers

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_models_app"]

DEFAULT_MAX_BODY_BYTES = 4 * 2**20


def create_models_app(
    backend: LocalBackend,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrency: int = 256,
    default_max_tokens: int = 4096,
    cors_origins: Sequence[str] = (),
) -> FastAPI:
    """An OpenAI-compatible API over ``backend``'s models: ``/v1/chat/completions``,
    ``/v1/completions``, ``/v1/embeddings``, ``/v1/models`` and ``/healthz``.

    ``api_key``: clients must send it as a bearer token (``/healthz`` stays open).
    ``max_concurrency``: requests in flight beyond it get 429. ``default_max_tokens``: the
    budget of a chat completion that names none (the model's context still ends it first).
    Without a key, only requests addressed to loopback from loopback pages or ``cors_origins``
    are served; ``cors_origins`` (``scheme://host[:port]``, or ``*`` with a key) may call it
    from a browser (CORS). ``HEAD`` is answered as ``GET`` without the body.
    The caller owns ``backend`` and closes it.

    >>> backend = LocalBackend.from_folders({"coder": "/models/coder"})  # doctest: +SKIP
    >>> uvicorn.run(create_models_app(backend), port=8000)  # doctest: +SKIP
    """
    for name, value in (
        ("max_body_bytes", max_body_bytes),
        ("max_concurrency", max_concurrency),
        ("default_max_tokens", default_max_tokens),
    ):
        if value < 1:
            raise ValueError(f"{name} is {value}; give 1 or more")
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key is empty; give a key, or None to serve without one")
    origins = check_cors_origins(cors_origins, api_key, where="cors_origins")
    from skillswitch import __version__

    app = FastAPI(
        title="skillswitch local models",
        version=__version__,
        summary="The local inference backend's models, OpenAI-compatible.",
    )
    app.state.backend = backend
    app.state.chat_completions = ChatCompletionsServing(
        backend, default_max_tokens=default_max_tokens
    )
    app.state.completions = CompletionsServing(backend)
    app.state.embeddings = EmbeddingsServing(backend)
    app.state.models = ModelsServing(backend, created=int(time.time()))
    for router in (chat_router, completions_router, embeddings_router, models_router):
        app.include_router(router)
    app.include_router(health_router)
    install_error_handlers(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        RequestGuard,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        max_concurrency=max_concurrency,
        loopback_only=api_key is None,
        origins=origins,
    )
    allow_cross_origin(app, origins)  # outermost
    return app
