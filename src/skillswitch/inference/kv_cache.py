"""The KV cache's name in transformers: ``past_key_values`` until 5.23, ``cache`` from 5.24
(the old name still works there, with a FutureWarning, until 5.40). skillswitch takes
``transformers>=5.17``, so it passes and reads the cache under the name the installed version
uses."""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = ["cache_argument", "returned_cache"]


@functools.cache
def _argument_name(forward: Any) -> str:
    parameters = inspect.signature(forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """The keyword argument that hands ``cache`` to ``model``'s forward."""
    return {_argument_name(type(model).forward): cache}


def returned_cache(output: Any) -> Any:
    """The cache a forward returned. By key: the old attribute name warns on new versions."""
    for name in ("cache", "past_key_values"):
        if name in output:
            return output[name]
    return None
