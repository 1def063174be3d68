"""The one place skillswitch reads environment variables.

Library code receives resolved values (paths, keys) from here; nothing else calls ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

from skillswitch.exceptions import ConfigError
from skillswitch.redaction import register_secret

__all__ = ["CACHE_DIR_VARIABLE", "api_key", "cache_dir"]

CACHE_DIR_VARIABLE = "SKILLSWITCH_CACHE_DIR"


def cache_dir(configured: Path | None = None) -> Path:
    """The cache root: the config's ``router.cache_dir``, else $SKILLSWITCH_CACHE_DIR,
    else $XDG_CACHE_HOME/skillswitch, else ~/.cache/skillswitch."""
    if configured is not None:
        return configured
    explicit = os.environ.get(CACHE_DIR_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "skillswitch"


def api_key(variable: str | None, *, path: str) -> str | None:
    """The API key held in ``variable`` (None when no variable is configured).

    A configured variable that is unset is a config mistake, reported with its YAML ``path``.
    """
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ConfigError.single(
            path,
            f"environment variable {variable!r} is not set; export it with the API key, "
            "or remove api_key_env if the endpoint needs no key",
        )
    register_secret(value)  # never in a log, a trace or an error from now on
    return value
