"""The local models skillswitch may serve: a name for each model folder, checked at registration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skillswitch.exceptions import UnknownModelError
from skillswitch.inference.folders import FolderInfo, ModelKind, inspect_folder
from skillswitch.inference.loading import DTYPES, DtypeName

__all__ = ["ModelEntry", "ModelRegistry"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    info: FolderInfo
    dtype: DtypeName = "auto"

    @property
    def kind(self) -> ModelKind:
        return self.info.kind


class ModelRegistry:
    """Names to model folders. Registering reads only the folder's config and weight headers.

    >>> registry = ModelRegistry()
    >>> registry.add("coder", "/models/qwen-coder")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}

    def add(self, name: str, path: str | Path, *, dtype: DtypeName = "auto") -> ModelEntry:
        if not name or not name.strip():
            raise ValueError("a local model needs a non-empty name")
        if name in self._entries:
            raise ValueError(f"local model {name!r} is registered twice; give each a unique name")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} of model {name!r} is not one of {list(DTYPES)}")
        entry = ModelEntry(name=name, info=inspect_folder(path), dtype=dtype)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(name, list(self._entries)) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
