"""The models of ``skillswitch serve``: automatic routing, one per served skill, one per expert."""

from __future__ import annotations

from skillswitch.server.api.models.protocol import ModelCard, ModelList
from skillswitch.server.api.targets import Target, Targets

__all__ = ["ModelsServing"]


class ModelsServing:
    def __init__(self, targets: Targets, *, created: int) -> None:
        self.targets = targets
        self.created = created
        """When the server started: OpenAI's ``created`` has no better meaning here."""

    def list(self) -> ModelList:
        names = self.targets.names()
        return ModelList(data=[self._card(self.targets.resolve(name)) for name in names])

    def get(self, model: str) -> ModelCard:
        return self._card(self.targets.resolve(model))  # unknown: 404 with a did-you-mean

    def _card(self, target: Target) -> ModelCard:
        if target.kind == "auto":
            description = "Routes each request by skill to the experts of its skills."
            experts = list(self.targets.experts)
        elif target.skill is not None:
            description = self.targets.descriptions.get(target.skill, "")
            experts = list(self.targets.skills[target.skill])
        else:
            description = "This expert alone, without routing."
            experts = [target.model]
        return ModelCard(
            id=target.model,
            created=self.created,
            kind=target.kind,
            description=description,
            experts=experts,
        )
