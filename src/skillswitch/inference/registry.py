"""The local models skillswitch may serve: a name for each model folder, checked at registration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from skillswitch.exceptions import UnknownModelError
from skillswitch.inference.folders import FolderInfo, ModelKind, inspect_folder
from skillswitch.inference.loading import DTYPES, DtypeName
from skillswitch.inference.tool_formats import FORMATS

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

    def add(
        self,
        name: str,
        path: str | Path,
        *,
        dtype: DtypeName = "auto",
        tool_call_format: str = "auto",
    ) -> ModelEntry:
        """Register the folder at ``path`` as ``name``. ``tool_call_format``: the format the
        model writes tool calls in (``tool_formats.FORMATS``), for a template whose format is
        not found from its text; ``auto``: found from it."""
        if not name or not name.strip():
            raise ValueError("a local model needs a non-empty name")
        if name in self._entries:
            raise ValueError(f"local model {name!r} is registered twice; give each a unique name")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} of model {name!r} is not one of {list(DTYPES)}")
        if tool_call_format != "auto" and tool_call_format not in FORMATS:
            raise ValueError(
                f"tool_call_format {tool_call_format!r} of model {name!r} is not one of "
                f"{['auto', *FORMATS]}"
            )
        info = inspect_folder(path)
        if tool_call_format != "auto":
            info = replace(info, tool_call_format=FORMATS[tool_call_format])
        entry = ModelEntry(name=name, info=info, dtype=dtype)
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
