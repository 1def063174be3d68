"""The OpenAI wire format both HTTP servers share: JSON bodies parsed into request models,
ids and timestamps, server-sent events."""

from __future__ import annotations

import json
import random
import re
import sys
import time
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from skillswitch.agents.client_tools import ClientTools, parse_client_tools
from skillswitch.exceptions import RequestError
from skillswitch.server.openai_errors import OpenAIError, validation_error

__all__ = [
    "IGNORED_FIELDS_HEADER",
    "check_n",
    "client_tools_of",
    "ignored_fields_text",
    "new_id",
    "now",
    "parse_body",
    "parse_json",
    "read_body",
    "sse",
]

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as ``model``, whatever the Content-Type says (curl's ``-d`` sends a form
    type); bad JSON and bad fields are 400s naming the field and the value."""
    return parse_json(await request.body(), model)


async def read_body(receive: Receive) -> bytes:
    """A request's whole body, read from the ASGI channel."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


_JSON_KINDS = {
    list: "a JSON array",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
    bool: "a JSON boolean",
    type(None): "JSON null",
}


def parse_json(raw: bytes, model: type[M]) -> M:
    """``raw`` as ``model``; bad JSON and bad fields are 400s naming the field and the value."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise OpenAIError(400, "the request body is JSON nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        shown = "empty" if not raw else "not valid JSON"
        raise OpenAIError(400, f"the request body is {shown} ({detail}{where})") from None
    except ValueError:  # an integer longer than Python reads (sys.get_int_max_str_digits)
        raise OpenAIError(
            400,
            "the request body holds an integer of more than "
            f"{sys.get_int_max_str_digits()} digits; send long numbers as strings",
        ) from None
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), type(data).__name__)
        raise OpenAIError(400, f"the request body is {kind}; send a JSON object")
    if _SURROGATE.search(raw) is not None and not _is_text(data):
        # JSON lets "\ud800" through; no expert can be sent it (the openai client fails to
        # encode it, which read as the expert's failure: a 502 for the client's mistake).
        raise OpenAIError(
            400,
            "the request body holds a lone surrogate (such as \\ud800 without its pair), which "
            "is not text; send UTF-8, or escape characters beyond U+FFFF as surrogate pairs",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


# A surrogate escape, or one encoded as UTF-8 (json.loads decodes bytes with surrogatepass):
# only then is the parsed body checked for lone surrogates.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _is_text(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


IGNORED_FIELDS_HEADER = "X-Skillswitch-Ignored-Fields"
_MAX_SHOWN_FIELDS = 20
_MAX_SHOWN_NAME = 64


def ignored_fields_text(names: list[str]) -> str:
    """The names of the fields a request sent that the server does not honour, as the log and
    the ``X-Skillswitch-Ignored-Fields`` header show them: they are the client's text, so at
    most 20 names of at most 64 characters each, printable ASCII only."""
    shown = [
        name if len(name) <= _MAX_SHOWN_NAME else f"{name[: _MAX_SHOWN_NAME - 3]}..."
        for name in names[:_MAX_SHOWN_FIELDS]
    ]
    text = ", ".join(shown)
    if len(names) > _MAX_SHOWN_FIELDS:
        text += f" and {len(names) - _MAX_SHOWN_FIELDS} more"
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def client_tools_of(body: BaseModel) -> ClientTools | None:
    """A chat request's ``tools`` and ``tool_choice``, checked (a 400 naming the field when they
    are malformed); OpenAI's deprecated ``functions``/``function_call`` get a 400 that says to
    send ``tools``."""
    for field in ("functions", "function_call"):
        if getattr(body, field, None) is not None:
            raise OpenAIError(
                400,
                f"{field} is OpenAI's deprecated form of tools; send tools (and tool_choice) "
                "instead",
                param=field,
            )
    try:
        return parse_client_tools(getattr(body, "tools", None), getattr(body, "tool_choice", None))
    except RequestError as exc:
        param = "tool_choice" if str(exc).startswith("tool_choice") else "tools"
        raise OpenAIError(400, str(exc), param=param) from None


def check_n(n: int | None) -> None:
    if n is not None and n != 1:
        raise OpenAIError(
            400, f"n is {n}; this server answers one choice per request, give n=1", param="n"
        )


def new_id(prefix: str) -> str:
    # 128 random bits, as uuid4 has, without its system call per id (an id is a name, not a
    # secret; ~2% of a gateway request's CPU).
    return f"{prefix}-{random.getrandbits(128):032x}"


def now() -> int:
    return int(time.time())


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"
