"""``skillswitch serve-models``: the local backend's models on an OpenAI-compatible HTTP server.

>>> inference = with_models(InferenceConfig(), ["coder=/models/qwen-coder"])  # doctest: +SKIP
>>> serve_models(inference, port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skillswitch.config.models import InferenceConfig, LocalModelConfig
from skillswitch.exceptions import (
    ConfigError,
    ConfigIssue,
    MissingDependencyError,
    ModelFolderError,
    ModelTooLargeError,
)
from skillswitch.server.browsers import check_cors_origins
from skillswitch.server.hosting import check_exposure, quiet_second_sigterm

__all__ = ["serve_models", "with_models"]

logger = logging.getLogger("skillswitch.server.models_api")


def with_models(
    inference: InferenceConfig, models: Sequence[str], *, device: str | None = None
) -> InferenceConfig:
    """``inference`` with each ``NAME=PATH`` model added (replacing a configured model of the
    same name; a relative PATH is read from the working directory) and ``device`` if given."""
    listed: dict[str, dict[str, Any]] = {
        model.name: model.model_dump() for model in inference.models
    }
    given: set[str] = set()
    for spec in models:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ConfigError.single(
                "--model", f"{spec!r} is not NAME=PATH; e.g. --model coder=/models/qwen-coder"
            )
        if name in given:
            raise ConfigError.single("--model", f"{name!r} is given twice; give each model once")
        given.add(name)
        try:
            checked = LocalModelConfig(name=name, path=str(Path(path).expanduser().resolve()))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            raise ConfigError.single(
                "--model",
                f"{spec!r}: {problem['loc'][0]} {problem['msg'][:1].lower()}{problem['msg'][1:]}",
            ) from None
        listed[name] = {**listed.get(name, {}), **checked.model_dump()}
    data = inference.model_dump()
    data["models"] = list(listed.values())
    if device is not None:
        data["device"] = device
    try:
        return InferenceConfig.model_validate(data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(
                path="--device" if error["loc"][:1] == ("device",) else _dotted(error["loc"]),
                message=f"{error['msg']}, got {error.get('input')!r}",
            )
            for error in exc.errors(include_url=False)
        ]
        raise ConfigError(issues) from None


def serve_models(
    inference: InferenceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_concurrency: int = 256,
    cors_origins: Sequence[str] = (),
) -> None:
    """Register ``inference.models``, then serve them until interrupted (SIGINT or SIGTERM),
    and close the backend. ``cors_origins``: web pages that may call it (``--cors-origin``)."""
    check_exposure(host, api_key)
    origins = check_cors_origins(cors_origins, api_key)
    if not inference.models:
        raise ConfigError.single(
            "inference.models",
            "no local models to serve; give --model NAME=PATH or list them under "
            "inference.models (name, path) in the config",
        )
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError("skillswitch serve-models", "local", module)
    import uvicorn

    from skillswitch.inference.configured import build_backend
    from skillswitch.server.models_api.app import create_models_app

    try:
        backend = build_backend(inference)
    except (ModelFolderError, ModelTooLargeError, ValueError) as exc:
        raise ConfigError.single("inference", str(exc)) from None
    try:
        app = create_models_app(
            backend, api_key=api_key, max_concurrency=max_concurrency, cors_origins=origins
        )
        models = ", ".join(f"{entry.name} ({entry.kind})" for entry in backend.models())
        logger.info(
            "serving %s on http://%s:%d/v1 (device %s%s)",
            models,
            host if ":" not in host else f"[{host}]",
            port,
            backend.device,
            ", API key required" if api_key else "",
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # uvicorn's records go to the CLI's handler, like ours
            lifespan="off",
            timeout_graceful_shutdown=5,  # open streams get this long before they are cut
        )
        with quiet_second_sigterm():
            uvicorn.Server(config).run()
    finally:
        backend.close()


def _dotted(loc: Sequence[Any]) -> str:
    path = "inference"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
