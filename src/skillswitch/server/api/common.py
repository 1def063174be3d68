"""What the endpoints of ``skillswitch serve`` share: chat messages as clients send them, the
fields a request sent that are not honoured (logged by name, never dropped silently), and
skillswitch's errors as OpenAI errors (a failed dispatch names every failing expert)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from skillswitch.agents.messages import Message, parse_messages
from skillswitch.exceptions import (
    ExpertsFailedError,
    ExpertTimeoutError,
    RequestError,
    SkillSwitchError,
)
from skillswitch.server.openai_errors import OpenAIError, error_for

__all__ = [
    "IGNORED_FIELDS_HEADER",
    "ChatMessage",
    "TextPart",
    "ignored",
    "logger",
    "switch_error",
    "to_messages",
]

logger = logging.getLogger("skillswitch.server.api")

IGNORED_FIELDS_HEADER = "X-Skillswitch-Ignored-Fields"
_ROLES = ("system", "developer", "user", "assistant")
_MAX_SHOWN_FIELDS = 20
_MAX_SHOWN_FAILURES = 8


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a conversation: text, or a list of text parts. Tool messages are refused
    with a reason (skillswitch's experts call their own tools; see ``refuse_client_tools``)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @field_validator("role", mode="before")
    @classmethod
    def _check_role(cls, value: Any) -> Any:
        if value in ("tool", "function"):
            raise ValueError(
                f"role {value!r} carries the result of a client-side tool call, which skillswitch "
                "does not serve: its experts call the tools of its own config; send system, "
                "user and assistant messages"
            )
        if value not in _ROLES:
            raise ValueError(f"role {_show(value)} is not one of {', '.join(_ROLES)}")
        return value

    @field_validator("content", mode="before")
    @classmethod
    def _check_content(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if value is None:
            raise ValueError(
                "content is null; give the message's text (assistant tool calls are not served)"
            )
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

    def to_message(self) -> Message:
        """``developer`` is OpenAI's newer name for ``system``; text parts join by lines."""
        text = (
            self.content
            if isinstance(self.content, str)
            else "\n".join(part.text for part in self.content)
        )
        return Message("system" if self.role == "developer" else self.role, text)

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
        return parse_messages([message.to_message() for message in messages])
    except RequestError as exc:
        raise OpenAIError(400, f"{param}: {exc}", param=param) from None


def ignored(endpoint: str, names: list[str]) -> dict[str, str]:
    """Log (INFO) the fields a request sent that skillswitch does not honour, and the response
    header that tells the client so (empty when there are none)."""
    if not names:
        return {}
    shown = ", ".join(names[:_MAX_SHOWN_FIELDS])
    if len(names) > _MAX_SHOWN_FIELDS:
        shown += f" and {len(names) - _MAX_SHOWN_FIELDS} more"
    # Field names are the client's text: printable ASCII only, in the log and in the header.
    safe = "".join(c if " " <= c <= "~" else "?" for c in shown)
    logger.info("%s: ignoring fields skillswitch does not honour: %s", endpoint, safe)
    return {IGNORED_FIELDS_HEADER: safe}


def switch_error(exc: SkillSwitchError) -> OpenAIError:
    """The answer to an error of the switch. When no expert answered: 504 ``upstream_timeout``
    if every one ran out of time (its timeout or the request's deadline), else 502
    ``upstream_error``; the message names each failing expert and its error."""
    if isinstance(exc, ExpertsFailedError):
        failures = list(exc.exceptions)
        shown = "; ".join(str(e) for e in failures[:_MAX_SHOWN_FAILURES])
        if len(failures) > _MAX_SHOWN_FAILURES:
            shown += f"; and {len(failures) - _MAX_SHOWN_FAILURES} more"
        if all(isinstance(e, ExpertTimeoutError) for e in failures):
            return OpenAIError(504, f"no expert answered in time: {shown}", code="upstream_timeout")
        return OpenAIError(502, f"no expert answered: {shown}", code="upstream_error")
    return error_for(exc)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
