"""``ToolFinder``: retrieval over the live catalogue (the index is rebuilt when the catalogue's
tools change, and only then)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from skillswitch.router.encoders import Encoder
from skillswitch.tools.catalogue import CatalogueTool
from skillswitch.tools.retrieval import CatalogueEntry, RetrievalSettings, ToolIndex

__all__ = ["ToolFinder"]


class ToolFinder:
    """Finds the catalogue tools most relevant to a request. ``make_encoder`` gives the encoder
    (the router's, or its float32 sibling: ``skillswitch.router.encoders.tool_retrieval_encoder``;
    or one written by ``skillswitch fit tools``, ``tools.retrieval.encoder``);
    it is called on the first search, which embeds the catalogue anyway, so a switch whose tools
    are never searched never opens a second encoder session. ``settings``: how tools are
    scored, and the "no tool applies" threshold (a fitted encoder's own, see
    :func:`skillswitch.tools.fitting.fitted_threshold`)."""

    def __init__(
        self, make_encoder: Callable[[], Encoder], settings: RetrievalSettings | None = None
    ) -> None:
        self._make_encoder = make_encoder
        self.settings = settings or RetrievalSettings()
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()
        self._key: tuple[str, ...] = ()
        self._index: ToolIndex | None = None
        self._tools: dict[tuple[str, str], CatalogueTool] = {}

    @property
    def encoder(self) -> Encoder | None:
        """The encoder, once the first search has opened it."""
        return self._encoder

    def search(
        self,
        request: str,
        catalogue: Sequence[CatalogueTool],
        k: int,
        *,
        within: Sequence[CatalogueTool] | None = None,
    ) -> tuple[list[tuple[CatalogueTool, float]], bool]:
        """The ``k`` tools most relevant to ``request`` with their scores, best first, and
        whether any tool applies at all. The index covers the whole ``catalogue`` (built once
        per catalogue); ``within`` restricts the answer to some of its tools."""
        if not catalogue:
            return [], False
        index = self._index_for(catalogue)
        allowed = None if within is None else {tool.public_name for tool in within}
        found = index.search(request, len(catalogue) if allowed is not None else k)
        ranked: list[tuple[CatalogueTool, float]] = []
        for hit in found.hits:
            tool = self._tools[(hit.entry.server, hit.entry.name)]
            if allowed is None or tool.public_name in allowed:
                ranked.append((tool, float(hit.score)))
        return ranked[:k], not found.no_tool_applies

    def select(
        self,
        request: str,
        catalogue: Sequence[CatalogueTool],
        candidates: Sequence[CatalogueTool],
        k: int,
    ) -> Sequence[CatalogueTool]:
        """The ``k`` most relevant of ``candidates`` (a ``CatalogueTools`` retriever)."""
        return [tool for tool, _ in self.search(request, catalogue, k, within=candidates)[0]]

    def _index_for(self, tools: Sequence[CatalogueTool]) -> ToolIndex:
        key = tuple(sorted(tool.public_name for tool in tools))
        with self._lock:
            if self._index is None or key != self._key:
                self._tools = {(tool.server, tool.name): tool for tool in tools}
                entries = [
                    CatalogueEntry(
                        server=tool.server,
                        name=tool.name,
                        description=tool.description,
                        input_schema=tool.input_schema,
                    )
                    for tool in tools
                ]
                if self._encoder is None:
                    self._encoder = self._make_encoder()
                self._index = ToolIndex(entries, self._encoder, settings=self.settings)
                self._key = key
            return self._index
