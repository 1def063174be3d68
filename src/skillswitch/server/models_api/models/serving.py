"""The registered local models, as OpenAI's model list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skillswitch.server.models_api.models.protocol import ModelCard, ModelList

if TYPE_CHECKING:
    from skillswitch.inference.backend import LocalBackend
    from skillswitch.inference.registry import ModelEntry

__all__ = ["ModelsServing"]


class ModelsServing:
    def __init__(self, backend: LocalBackend, *, created: int) -> None:
        self.backend = backend
        self.created = created
        """When the server started: OpenAI's ``created`` has no better meaning for a folder."""

    def list(self) -> ModelList:
        return ModelList(data=[self._card(entry) for entry in self.backend.models()])

    def get(self, name: str) -> ModelCard:
        return self._card(self.backend.registry.get(name))  # unknown: 404 with a did-you-mean

    def _card(self, entry: ModelEntry) -> ModelCard:
        return ModelCard(id=entry.name, created=self.created, kind=entry.kind)
