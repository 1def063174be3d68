"""The body of ``POST /v1/route``: ``{"input": text or chat messages}``. The answer is the
routing decision's JSON (``RoutingDecision.to_dict``, schema ``skillswitch.routing/1``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from skillswitch.server.api.common import ChatMessage

__all__ = ["RouteRequest"]


class RouteRequest(BaseModel):
    """Fields that are not declared are accepted and logged as ignored."""

    model_config = ConfigDict(extra="allow")

    input: str | list[ChatMessage]

    def ignored_fields(self) -> list[str]:
        names = sorted(self.model_extra or {})
        if isinstance(self.input, list):
            for index, message in enumerate(self.input):
                names += message.ignored_fields(f"input[{index}]")
        return names
