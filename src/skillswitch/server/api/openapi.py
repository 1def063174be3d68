"""What ``/openapi.json`` says of the endpoints: the request bodies of the handlers that parse
their own (``parse_body``, so FastAPI cannot see them), and the OpenAI-shaped errors each
route may answer. Clients and fuzzers (schemathesis, tests/fuzz) read the spec: it must say
what the server really takes and sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "GUARD_ERRORS",
    "SSE_EVENT",
    "ErrorObject",
    "ErrorResponse",
    "error_responses",
    "json_request_body",
]

# RequestGuard's refusals on /v1: a missing or wrong key, a body too large, too many requests.
GUARD_ERRORS = (401, 413, 429)

# One server-sent event (OpenAPI before 3.2 describes a stream's events one by one): its data is
# a JSON chat.completion.chunk, or the final [DONE].
SSE_EVENT = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
    "required": ["data"],
}

_DESCRIPTIONS = {
    400: "The request is malformed; the message names the field and the value sent.",
    401: "The API key is missing or wrong (servers started with a key).",
    404: "No such model, skill or expert; the message suggests the nearest names.",
    413: "The body is larger than the server takes (max_body_bytes).",
    422: "Every expert asked declined the request as put (a tool expert found no arguments in "
    "it; code expert_declined), no expert serves its skills (no_expert), or its answer could "
    "not be had in the form response_format asks for (response_format_not_kept): rephrase it, "
    "send it to another model or without response_format; the skillswitch field holds the "
    "trace.",
    429: "Too many requests in flight (max_concurrency) or from this client (rate_limit); "
    "retry after Retry-After.",
    502: "No expert answered; the error's skillswitch field holds the trace of what was tried.",
    504: "No expert answered in time; the error's skillswitch field holds the trace.",
}


class ErrorObject(BaseModel):
    """OpenAI's error object (more fields may follow: ``skillswitch``, a failed run's trace)."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error answer of the HTTP API: ``{"error": {...}}``."""

    error: ErrorObject


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for the error statuses it may answer."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its own body as ``model``: the JSON schema
    inlined (no ``$ref`` into ``$defs``, which would point at the spec's root)."""
    schema = model.model_json_schema(mode="validation")
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, definitions)}},
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            # The request models are not recursive, so inlining ends.
            target = definitions[reference.removeprefix("#/$defs/")]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node
