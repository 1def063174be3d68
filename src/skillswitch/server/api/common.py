"""What the endpoints of ``skillswitch serve`` share: chat messages as clients send them, the
fields a request sent that are not honoured (logged by name, never dropped silently), and
skillswitch's errors as OpenAI errors (a failed dispatch names every failing expert)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from skillswitch.agents.messages import Message, parse_messages
from skillswitch.exceptions import (
    ExpertDeclinedError,
    ExpertRequestError,
    ExpertsFailedError,
    ExpertTimeoutError,
    RequestError,
    ResponseFormatError,
    SkillSwitchError,
)
from skillswitch.server.openai_errors import OpenAIError, error_for
from skillswitch.server.wire import IGNORED_FIELDS_HEADER, ignored_fields_text

__all__ = [
    "ChatMessage",
    "TextPart",
    "ignored",
    "logger",
    "switch_error",
    "to_messages",
]

logger = logging.getLogger("skillswitch.server.api")

_ROLES = ("system", "developer", "user", "assistant", "tool")
_NAMED_PART = re.compile(r"^(messages\[\d+\](?:\.\w+)?)")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a conversation: text, or a list of text parts; an assistant message may
    call the client's tools (``tool_calls``, content then null) and a ``tool`` message brings
    a call's result (``tool_call_id``). The pairing of calls and results is checked by
    ``parse_messages``."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _check_role(cls, value: Any) -> Any:
        if value == "function":
            raise ValueError(
                "role 'function' is OpenAI's deprecated form of tool results; send role 'tool' "
                "with the tool_call_id of the call it answers"
            )
        if value not in _ROLES:
            raise ValueError(f"role {_show(value)} is not one of {', '.join(_ROLES)}")
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _check_content(cls, value: Any) -> Any:
        if isinstance(value, str) or value is None:
            return value  # null is for assistant tool calls only: parse_messages checks
        if not isinstance(value, list):
            raise ValueError(
                f"content is {_show(value)}; give a string or a list of "
                '{"type": "text", "text": ...} parts'
            )
        for position, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise ValueError(
                    f"content[{position}] is a {kind!r} part; skillswitch routes text only, "
                    'send {"type": "text", "text": ...} parts'
                    if kind
                    else f'content[{position}] is {_show(part)}; give {{"type": "text", '
                    '"text": ...}'
                )
        return value

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's shape, simplified: ``developer`` is OpenAI's newer name for ``system``
        (``parse_messages`` joins text parts by lines)."""
        content = self.content
        message: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": content
            if content is None or isinstance(content, str)
            else [{"type": "text", "text": part.text} for part in content],
        }
        if self.tool_calls is not None:
            message["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message

    def ignored_fields(self, where: str) -> list[str]:
        """The fields not honoured, named from ``where`` (this message, e.g. ``messages[2]``)."""
        names = [f"{where}.{name}" for name in sorted(self.model_extra or {})]
        if self.name is not None:
            names.append(f"{where}.name")
        return names


def to_messages(messages: Sequence[ChatMessage], *, param: str = "messages") -> tuple[Message, ...]:
    """The conversation as the switch takes it; a 400 naming ``param`` when it cannot be
    answered (empty, or not ending with a non-empty user message)."""
    if not messages:
        raise OpenAIError(400, f"{param} is empty; send at least one user message", param=param)
    try:
        return parse_messages([message.to_openai() for message in messages])
    except RequestError as exc:
        text = str(exc)
        named = _NAMED_PART.match(text)  # e.g. "messages[2].content is null; ..."
        if named is not None:
            where = param + named.group(1).removeprefix("messages")
            raise OpenAIError(400, param + text.removeprefix("messages"), param=where) from None
        raise OpenAIError(400, f"{param}: {text}", param=param) from None


def ignored(endpoint: str, names: list[str]) -> dict[str, str]:
    """Log (INFO) the fields a request sent that skillswitch does not honour, and the response
    header that tells the client so (empty when there are none)."""
    if not names:
        return {}
    safe = ignored_fields_text(names)
    logger.info("%s: ignoring fields skillswitch does not honour: %s", endpoint, safe)
    return {IGNORED_FIELDS_HEADER: safe}


def switch_error(exc: SkillSwitchError) -> OpenAIError:
    """The answer to an error of the switch. When no expert answered: 422 ``expert_declined``
    if every one declined the request as put, 400 ``request_refused`` if every one refused it
    as sent (declines aside), 504 ``upstream_timeout`` if every one ran out
    of time (its timeout or the request's deadline), else 502
    ``upstream_error``; the message names each failing expert and its error, and the error
    object's ``skillswitch`` field holds the trace of what was tried."""
    if isinstance(exc, ExpertsFailedError):
        failures = list(exc.exceptions)
        shown = exc.reasons()
        extra = {} if exc.trace is None else {"skillswitch": exc.trace.to_dict()}
        if all(isinstance(e, ExpertDeclinedError) for e in failures):
            # Nothing failed: every expert asked says the request is not one it can answer.
            return OpenAIError(
                422,
                f"no expert could answer the request as put: {shown}",
                code="expert_declined",
                param="messages",
                extra=extra,
            )
        if all(isinstance(e, ExpertRequestError | ExpertDeclinedError) for e in failures):
            # The request as sent is at fault (longer than a model's context, say).
            return OpenAIError(
                400,
                f"the request cannot be answered as sent: {shown}",
                code="request_refused",
                param="messages",
                extra=extra,
            )
        if all(isinstance(e, ExpertTimeoutError) for e in failures):
            return OpenAIError(
                504, f"no expert answered in time: {shown}", code="upstream_timeout", extra=extra
            )
        return OpenAIError(502, f"no expert answered: {shown}", code="upstream_error", extra=extra)
    if isinstance(exc, ResponseFormatError):
        # Asking again will not change the experts' way of answering (a 5xx would have
        # clients retry it); the client can drop response_format or ask for another form.
        extra = {} if exc.trace is None else {"skillswitch": exc.trace.to_dict()}
        return OpenAIError(
            422, str(exc), code="response_format_not_kept", param="response_format", extra=extra
        )
    return error_for(exc)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
