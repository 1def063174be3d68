"""What a local model folder holds, read without loading it.

A folder is checked when it is registered (at start-up), not when the first request needs it:
a missing tokenizer or a truncated weight file is a configuration mistake and is reported as one,
naming the folder and what it lacks. Weight sizes come from the safetensors headers, so the
memory budget can refuse a model that can never fit before a byte of it is read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from skillswitch.exceptions import ModelFolderError
from skillswitch.inference.tool_formats import ToolCallFormat, detect_format

__all__ = ["DTYPE_BYTES", "FolderInfo", "ModelKind", "inspect_folder"]

ModelKind = Literal["chat", "embedding"]

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json")
_MAX_HEADER_BYTES = 100 * 2**20  # the safetensors format's own limit


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A model folder's config, weight files and sizes."""

    path: Path
    config: dict[str, Any]
    kind: ModelKind
    weight_files: tuple[Path, ...]
    parameter_count: int
    """Elements of every floating-point tensor (what a dtype change resizes)."""
    other_bytes: int
    """Bytes of integer and boolean tensors (never cast)."""
    stored_bytes: int
    has_chat_template: bool
    tool_call_format: ToolCallFormat | None = None
    """The format its chat template writes tool calls in (None: it writes none we read), or
    the one its config names (``ModelRegistry.add``)."""

    def bytes_as(self, element_bytes: int | None) -> int:
        """Weight bytes once loaded with ``element_bytes`` per float (None: as stored)."""
        if element_bytes is None:
            return self.stored_bytes
        return self.parameter_count * element_bytes + self.other_bytes


def inspect_folder(path: str | Path) -> FolderInfo:
    """Check that ``path`` is a loadable model folder and measure its weights."""
    folder = Path(path).expanduser()
    shown = str(folder)
    if not folder.exists():
        raise ModelFolderError(shown, "does not exist; give the folder that holds config.json")
    if not folder.is_dir():
        raise ModelFolderError(shown, "is a file, not a folder; give the folder that holds it")
    config = _read_config(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        found = sorted(p.name for p in folder.iterdir())[:10]
        hint = (
            " (.bin weights: convert them to safetensors)"
            if any(n.endswith(".bin") for n in found)
            else ""
        )
        raise ModelFolderError(shown, f"has no *.safetensors weights{hint}; it holds {found}")
    if not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise ModelFolderError(
            shown, f"has no tokenizer (one of {list(_TOKENIZER_FILES)}); save the tokenizer there"
        )
    template = _chat_template(folder)
    params = other = stored = 0
    for file in weights:
        for dtype, numel in _tensor_sizes(file):
            nbytes = numel * DTYPE_BYTES.get(dtype, 4)
            stored += nbytes
            if dtype in _FLOAT_DTYPES:
                params += numel
            else:
                other += nbytes
    return FolderInfo(
        path=folder,
        config=config,
        kind=_kind(config),
        weight_files=tuple(weights),
        parameter_count=params,
        other_bytes=other,
        stored_bytes=stored,
        has_chat_template=template is not None,
        tool_call_format=None if template is None else detect_format(template),
    )


def _read_config(folder: Path) -> dict[str, Any]:
    file = folder / "config.json"
    if not file.exists():
        raise ModelFolderError(str(folder), "has no config.json; is this a transformers model?")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(str(folder), f"config.json is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelFolderError(str(folder), "config.json has no model_type")
    return config


def _tensor_sizes(file: Path) -> list[tuple[str, int]]:
    """(dtype, element count) of every tensor, from the file's JSON header alone."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFolderError(str(file.parent), f"{file.name} is truncated (no header)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise ModelFolderError(
                str(file.parent), f"{file.name} is corrupt or truncated (bad header length)"
            )
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelFolderError(
                str(file.parent), f"{file.name} is corrupt (its header is not JSON)"
            ) from None
    sizes: list[tuple[str, int]] = []
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        numel = 1
        for dim in entry["shape"]:
            numel *= int(dim)
        sizes.append((str(entry["dtype"]), numel))
        end = max(end, int(entry["data_offsets"][1]))
    if 8 + header_len + end > size:
        raise ModelFolderError(
            str(file.parent),
            f"{file.name} is truncated ({size} bytes, its header needs {8 + header_len + end}); "
            "copy or download it again",
        )
    return sizes


def _kind(config: dict[str, Any]) -> ModelKind:
    architectures = config.get("architectures") or []
    if any(str(a).endswith(("ForCausalLM", "ForConditionalGeneration")) for a in architectures):
        return "chat"
    if config.get("is_decoder") or config.get("model_type") in {"llama", "qwen2", "qwen3"}:
        return "chat"
    return "embedding"


def _chat_template(folder: Path) -> str | None:
    """The folder's chat template text (several named ones as their JSON), or None."""
    for name in ("chat_template.jinja", "chat_template.json"):
        if (folder / name).exists():
            return (folder / name).read_text(encoding="utf-8", errors="replace")
    file = folder / "tokenizer_config.json"
    if not file.exists():
        return None
    try:
        template = json.loads(file.read_text(encoding="utf-8")).get("chat_template")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not template:
        return None
    return template if isinstance(template, str) else json.dumps(template)
