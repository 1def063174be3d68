"""The form a caller wants its answer in (OpenAI's ``response_format``): a JSON object, or JSON
that a given schema accepts. Free text (``{"type": "text"}``) is the default and asks nothing.

It travels with the request's sampling (``SamplingSettings.response_format``), so every model
that answers the request is asked for it: OpenAI-compatible experts send it to their endpoint,
which constrains the output; local models decode in its grammar
(``agents.local_model.format_grammar``) and, as any model that cannot be asked by a parameter,
get ``instruction()`` in their system message, which says what to put in the form. Tools
answer in text whatever is asked. The switch
checks the final answer with ``ResponseFormat.read``; one that is not in the form is put in it
by the aggregator, or the request fails with ``ResponseFormatError``: an answer in another
form than the one asked for is never returned as if it were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from skillswitch.agents.messages import Message
from skillswitch.exceptions import RequestError
from skillswitch.schemas import instance_problem, schema_invalid

__all__ = ["ResponseFormat", "parse_response_format", "with_format_instruction"]

FormatKind = Literal["json_object", "json_schema"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for json_schema.name
_FENCED = re.compile(r"^```[ \t]*(?:json)?[ \t]*\n(.*)\n[ \t]*```$", re.DOTALL | re.IGNORECASE)
_SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """JSON mode (``json_object``) or structured output (``json_schema`` with its schema)."""

    kind: FormatKind
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    description: str | None = None
    strict: bool | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``json_object``, or ``json_schema 'weather'``."""
        return self.kind if self.name is None else f"{self.kind} {self.name!r}"

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's ``response_format`` object, as an endpoint takes it."""
        if self.kind == "json_object":
            return {"type": "json_object"}
        spec: dict[str, Any] = {"name": self.name, "schema": dict(self.schema or {})}
        if self.description is not None:
            spec["description"] = self.description
        if self.strict is not None:
            spec["strict"] = self.strict
        return {"type": "json_schema", "json_schema": spec}

    def instruction(self) -> str:
        """What to tell a model that cannot be asked for the format by a parameter."""
        text = (
            "Reply with one JSON object and nothing else: no text before or after it, no code "
            "fences."
        )
        if self.kind == "json_schema":
            schema = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
            text += f" It must validate against this JSON Schema:\n{schema}"
        return text

    def read(self, text: str) -> str:
        """``text`` as the answer in this format: the JSON, without the spaces or one code
        fence around it. Raises ``ValueError`` saying what is wrong with it.

        >>> ResponseFormat("json_object").read('```json\\n{"km": 8.05}\\n```')
        '{"km": 8.05}'
        """
        body = text.strip()
        fenced = _FENCED.match(body)
        if fenced is not None:
            body = fenced.group(1).strip()
        try:
            value = json.loads(body, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            line = f"line {exc.lineno} " if exc.lineno > 1 else ""
            where = f"{line}column {exc.colno}"
            raise ValueError(f"it is not JSON ({exc.msg} at {where}): {_shown(body)}") from None
        except ValueError as exc:  # NaN or Infinity
            raise ValueError(f"it is not JSON ({exc}): {_shown(body)}") from None
        if not isinstance(value, dict):
            raise ValueError(f"it is a JSON {_json_type(value)}, not an object: {_shown(body)}")
        if self.kind == "json_schema" and self.schema is not None:
            problem = instance_problem(self.schema, value, root="(answer)")
            if problem is not None:
                raise ValueError(f"it does not follow the schema: {problem}")
        return body


def parse_response_format(value: object) -> ResponseFormat | None:
    """A caller's ``response_format`` (OpenAI's shapes, or a ``ResponseFormat``); ``None`` for
    free text. A malformed one raises ``RequestError`` naming the field and the fix.

    >>> parse_response_format({"type": "json_object"})
    ResponseFormat(kind='json_object', schema=None, name=None, description=None, strict=None)
    """
    if value is None or isinstance(value, ResponseFormat):
        return value
    if not isinstance(value, Mapping):
        raise RequestError(
            f"response_format is {value!r}; give an object such as "
            '{"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}'
        )
    kind = value.get("type")
    if kind == "text":
        _no_other_fields(value, "text", ())
        return None
    if kind == "json_object":
        _no_other_fields(value, "json_object", ())
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise RequestError(
            f"response_format.type is {kind!r}; give 'text', 'json_object' or 'json_schema'"
        )
    _no_other_fields(value, "json_schema", ("json_schema",))
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        raise RequestError(
            f"response_format.json_schema is {spec!r}; give an object with a name and a "
            'schema, e.g. {"name": "weather", "schema": {"type": "object", ...}}'
        )
    return _json_schema(spec)


def _json_schema(spec: Mapping[str, Any]) -> ResponseFormat:
    where = "response_format.json_schema"
    unknown = sorted(set(spec) - {"name", "schema", "description", "strict"})
    if unknown:
        raise RequestError(
            f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; it takes name, "
            "schema, description and strict"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError(
            f"{where}.name is {name!r}; give 1 to 64 letters, digits, '_' or '-' (e.g. 'weather')"
        )
    schema = spec.get("schema")
    if schema is None:
        raise RequestError(
            f"{where}.schema is missing; give the JSON Schema the answer must follow, or send "
            '{"type": "json_object"} for any JSON object'
        )
    problem = schema_invalid(schema)
    if problem is not None:
        raise RequestError(f"{where}.schema is not a valid JSON Schema: {problem}")
    root = schema.get("type", "object") if isinstance(schema, Mapping) else "object"
    if root != "object" and not (isinstance(root, list) and "object" in root):
        # The answer is one JSON object (as OpenAI's structured output requires): a schema
        # whose root is something else could never be kept.
        raise RequestError(
            f"{where}.schema has type {json.dumps(root)}; the answer is a JSON object, so give "
            'a schema with "type": "object" (wrap other values in a property)'
        )
    described, strict = spec.get("description"), spec.get("strict")
    if described is not None and not isinstance(described, str):
        raise RequestError(f"{where}.description is {described!r}; give a string")
    if strict is not None and not isinstance(strict, bool):
        raise RequestError(f"{where}.strict is {strict!r}; give true or false")
    return ResponseFormat("json_schema", dict(schema), name, described, strict)


def with_format_instruction(
    messages: Sequence[Message], response_format: ResponseFormat | None
) -> list[Message]:
    """``messages`` with the format's instruction at the end of the system message (one is
    added first when there is none: chat templates take a system message first only)."""
    if response_format is None:
        return list(messages)
    instruction = response_format.instruction()
    if messages and messages[0].role == "system":
        first = messages[0]
        return [replace(first, content=f"{first.content}\n\n{instruction}"), *messages[1:]]
    return [Message("system", instruction), *messages]


def _no_other_fields(value: Mapping[str, Any], kind: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - {"type", *allowed})
    if unknown:
        takes = f"type and {', '.join(allowed)}" if allowed else "type alone"
        raise RequestError(
            f"response_format of type {kind!r} has unknown field(s) "
            f"{', '.join(map(repr, unknown))}; it takes {takes}"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _shown(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= _SHOWN_CHARS:
        return repr(one_line)
    return repr(one_line[:_SHOWN_CHARS]) + "..."
