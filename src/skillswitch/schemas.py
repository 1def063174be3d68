"""JSON Schema checks with messages a person can act on: a tool's arguments against its input
schema, an answer against the schema a caller's ``response_format`` asks for.

Validators are compiled once per distinct schema (checking a schema is slow; tools and callers
keep theirs). jsonschema is imported on first use.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["instance_problem", "schema_invalid"]


def instance_problem(schema: Mapping[str, Any], instance: Any, *, root: str) -> str | None:
    """Why ``instance`` fails the JSON Schema (up to three failures, each at its path, ``root``
    naming the whole), or ``None`` when it passes or the schema itself is invalid (then nobody
    here can judge)."""
    validator, _ = _compiled(_key(schema))
    if validator is None:
        return None
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return None
    shown = []
    for found in errors[:3]:
        error = _most_telling(found)
        where = ".".join(str(p) for p in error.absolute_path) or root
        shown.append(f"{where}: {_message(error)}")
    return "; ".join(shown)


def schema_invalid(schema: Any) -> str | None:
    """Why ``schema`` is not a JSON Schema its own draft accepts (``None`` when it is). Checked
    once per distinct schema: a client sending the same one with every request pays once."""
    if not isinstance(schema, Mapping):
        return f"a JSON Schema is an object, got {type(schema).__name__}"
    return _compiled(_key(schema))[1]


def _most_telling(error: Any) -> Any:
    """Within an ``anyOf``/``oneOf`` (e.g. an optional value: a number or null), the failure
    of the branch the value was meant for ("3 is greater than the maximum of 2"), not "3 is
    not valid under any of the given schemas"."""
    from jsonschema.exceptions import best_match

    return best_match([error]) if error.context else error


def _message(error: Any) -> str:
    """jsonschema's message, or for a value of none of a union's types, which types."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        kinds = [e.validator_value for e in error.context if e.validator == "type"]
        if len(kinds) == len(error.context):
            named = " or ".join(repr(k) for kind in kinds for k in _listed(kind))
            return f"{error.instance!r} is not of type {named}"
    return str(error.message)


def _listed(kind: Any) -> list[Any]:
    return list(kind) if isinstance(kind, list) else [kind]


def _key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, default=str)


@functools.lru_cache(maxsize=4096)
def _compiled(schema_json: str) -> tuple[Any, str | None]:
    """A compiled validator per distinct schema, or ``None`` and why the schema is not valid."""
    import jsonschema

    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return None, exc.message + (f" (at {where})" if where else "")
    return validator_class(schema), None
