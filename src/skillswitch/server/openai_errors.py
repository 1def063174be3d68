"""OpenAI-shaped errors for skillswitch's HTTP servers.

Every error answer has OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so
OpenAI clients raise their usual exception classes with our message. This module is the one place
where skillswitch's exception tree meets HTTP statuses (STYLE 7); any FastAPI app installs it with
``install_error_handlers(app)`` and raises ``OpenAIError`` for its own cases.

>>> raise OpenAIError(400, "n is 2; give n=1", param="n")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from skillswitch.exceptions import (
    ExpertDeclinedError,
    ExpertError,
    ExpertRequestError,
    ExpertsFailedError,
    ExpertTimeoutError,
    GenerationCancelledError,
    ModelFolderError,
    ModelTooLargeError,
    NoExpertError,
    RequestError,
    ResponseFormatError,
    SkillSwitchError,
    UnknownExpertError,
    UnknownModelError,
    UnknownToolError,
)
from skillswitch.redaction import redact, redact_json

__all__ = [
    "OpenAIError",
    "error_body",
    "error_for",
    "install_error_handlers",
    "validation_error",
]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {
    401: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "too_many_requests",
}

# skillswitch's errors in the order they are tried (subclasses before their bases):
# (class, status, code, param). A SkillSwitchError that is also a ValueError is a mistake in the
# request (the tree's convention), answered 400; any other one is the server's failure, 500.
_MAPPING: tuple[tuple[type[BaseException], int, str | None, str | None], ...] = (
    (UnknownModelError, 404, "model_not_found", "model"),
    (UnknownExpertError, 404, "model_not_found", "model"),
    (UnknownToolError, 404, "tool_not_found", None),
    (RequestError, 400, None, None),
    (ModelFolderError, 503, "model_unavailable", None),
    (ModelTooLargeError, 503, "model_unavailable", None),
    (GenerationCancelledError, 503, "service_unavailable", None),
    (ExpertDeclinedError, 422, "expert_declined", "messages"),
    # Routed to a skill no configured expert serves: the server cannot answer it, and asking
    # again will not change that (a 5xx would have clients retry it).
    (NoExpertError, 422, "no_expert", "messages"),
    (ExpertRequestError, 400, "request_refused", "messages"),
    (ResponseFormatError, 422, "response_format_not_kept", "response_format"),
    (ExpertTimeoutError, 504, "upstream_timeout", None),
    (ExpertsFailedError, 502, "upstream_error", None),
    (ExpertError, 502, "upstream_error", None),
)


def error_body(
    message: str,
    error_type: str,
    param: str | None = None,
    code: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return {"error": {**error, **(extra or {})}}


class OpenAIError(Exception):
    """An error answer: the status, and the fields of OpenAI's error object.

    ``error_type`` defaults by status (``invalid_request_error`` for 4xx, ``server_error`` for
    5xx); ``param`` names the request field at fault; ``extra``: more fields of the error
    object (skillswitch's ``skillswitch`` trace of a failed run).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.extra = dict(extra or {})
        self.status = status
        self.message = message
        self.error_type = (
            error_type
            or _TYPES.get(status)
            or ("server_error" if status >= 500 else "invalid_request_error")
        )
        self.param = param
        self.code = code if code is not None else _CODES.get(status)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The error object; secrets (an upstream may echo the key it was sent) redacted."""
        body = error_body(redact(self.message), self.error_type, self.param, self.code)
        if self.extra:
            body["error"].update(redact_json(self.extra))
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_for(exc: SkillSwitchError, *, param: str | None = None) -> OpenAIError:
    """The answer to one of skillswitch's own errors (its message is already meant for users).

    ``param`` names the request field at fault for client errors that do not know it (a
    prompt that is too long: ``messages`` or ``prompt``); server failures name none.
    """
    message = str(exc)
    for cls, status, code, default_param in _MAPPING:
        if isinstance(exc, cls):
            fallback = param if status < 500 else None
            return OpenAIError(status, message, code=code, param=default_param or fallback)
    if isinstance(exc, ValueError):
        return OpenAIError(400, message, param=param)
    return OpenAIError(500, message)


def validation_error(errors: Sequence[Mapping[str, Any]], *, skip: int = 0) -> OpenAIError:
    """A 400 naming each bad field and the value sent (pydantic's or FastAPI's ``errors()``).

    ``skip`` drops leading location parts (FastAPI's ``"body"``).
    """
    lines: list[str] = []
    first_param: str | None = None
    for error in errors[:3]:
        loc = tuple(error.get("loc", ()))[skip:]
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error") or error.get("msg", "")
            lines.append(f"the request body is not valid JSON ({detail})")
            continue
        path = _dotted(loc)
        if first_param is None and path:
            first_param = path
        lines.append(f"{path or 'the request body'}: {_explain(error)}")
    if len(errors) > 3:
        lines.append(f"and {len(errors) - 3} more problems")
    return OpenAIError(400, "; ".join(lines), param=first_param)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with OpenAI's shape: ``OpenAIError`` as it is, skillswitch's errors
    by ``error_for``, validation errors as 400, unknown routes as 404, anything else as a 500
    that names the exception's class (the traceback goes to the server log, not the client)."""

    async def on_openai_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OpenAIError)
        return exc.response()

    async def on_skillswitch_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SkillSwitchError)
        return error_for(exc).response()

    async def on_request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc.errors(), skip=1).response()

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return validation_error(exc.errors(include_url=False)).response()

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.url.path} does not accept {request.method}"
        else:
            message = str(exc.detail)
        return OpenAIError(exc.status_code, message, headers=exc.headers).response()

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so the server logs the traceback once.
        return OpenAIError(
            500, f"internal server error ({type(exc).__name__}); the server log has the details"
        ).response()

    app.add_exception_handler(OpenAIError, on_openai_error)
    app.add_exception_handler(SkillSwitchError, on_skillswitch_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _dotted(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _explain(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "value_error":  # our own validators' messages, without pydantic's prefix
        message = str((error.get("ctx") or {}).get("error") or error.get("msg", ""))
    else:
        message = str(error.get("msg", ""))
        message = message[:1].lower() + message[1:]
    if "input" in error and kind != "value_error":
        message += f", got {_show(error['input'])}"
    return message


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
