"""The body of ``POST /v1/route``: ``{"input": text or chat messages}``. The answer is the
routing decision's JSON (``RoutingDecision.to_dict``, schema ``skillswitch.routing/1``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from skillswitch.server.api.common import ChatMessage

__all__ = ["RouteRequest"]


class RouteRequest(BaseModel):
    """Fields that are not declared are accepted and logged as ignored."""

    model_config = ConfigDict(extra="allow")

    input: str | list[ChatMessage]

    @field_validator("input", mode="before")
    @classmethod
    def _text_or_messages(cls, value: Any) -> Any:
        """One message for a wrong kind, not one per member of the union ("input.str: ...;
        input.list[ChatMessage]: ...")."""
        if not isinstance(value, str | list):
            kind = "null" if value is None else type(value).__name__
            raise ValueError(
                f"a text or a list of chat messages is needed, got {kind}: send "
                '{"input": "what is 2+2"} or {"input": [{"role": "user", "content": "..."}]}'
            )
        return value

    def ignored_fields(self) -> list[str]:
        names = sorted(self.model_extra or {})
        if isinstance(self.input, list):
            for index, message in enumerate(self.input):
                names += message.ignored_fields(f"input[{index}]")
        return names
