"""``POST /v1/route``: where a request would go, without calling any expert."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread

from skillswitch.exceptions import RequestError
from skillswitch.server.api.common import to_messages
from skillswitch.server.api.routing.protocol import RouteRequest
from skillswitch.server.openai_errors import OpenAIError

if TYPE_CHECKING:
    from skillswitch.switch import Switch

__all__ = ["RouteServing"]


class RouteServing:
    def __init__(self, switch: Switch) -> None:
        self.switch = switch

    async def decide(self, body: RouteRequest) -> dict[str, Any]:
        """The decision for a text, or for a conversation's last user message (as
        ``Switch.run`` routes it)."""
        if isinstance(body.input, str):
            text = body.input
        else:
            text = to_messages(body.input, param="input")[-1].content
        try:
            # The encoder is CPU work: off the event loop, as Switch.run does.
            decision = await anyio.to_thread.run_sync(self.switch.route, text)
        except RequestError as exc:
            raise OpenAIError(400, f"input: {exc}", param="input") from None
        return decision.to_dict()
