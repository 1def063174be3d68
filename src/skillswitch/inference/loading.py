"""Device and dtype selection, and loading a model folder through transformers.

Everything that touches torch or transformers lives in ``skillswitch.inference``; importing the
rest of skillswitch never imports them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from skillswitch.exceptions import ModelFolderError
from skillswitch.inference.attention import use_packed_decode_attention
from skillswitch.inference.folders import FolderInfo, ModelKind
from skillswitch.inference.tool_formats import ToolCallFormat

__all__ = [
    "DTYPES",
    "DtypeName",
    "LoadedModel",
    "load_model",
    "resolve_device",
    "resolve_dtype",
]

DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[DtypeName, ...] = ("auto", "float32", "bfloat16", "float16")
_ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def resolve_device(name: str = "auto") -> str:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    import torch

    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"inference.device is {name!r} but this machine has no CUDA device; "
                "use 'auto' or 'cpu'"
            )
        return name if ":" in name else "cuda:0"
    if name != "cpu":
        raise ValueError(f"inference.device {name!r} is not 'auto', 'cpu' or 'cuda[:N]'")
    return name


def resolve_dtype(name: DtypeName, device: str) -> str:
    """``auto``: bfloat16 on CUDA, float32 on the CPU (where bf16 matmuls are slow)."""
    if name == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return name


def element_bytes(dtype: str) -> int:
    return _ELEMENT_BYTES[dtype]


@dataclass(slots=True)
class LoadedModel:
    """A model in memory with its tokenizer; ``location`` is "device" or "host"."""

    name: str
    kind: ModelKind
    model: Any
    tokenizer: Any
    nbytes: int
    device: str
    location: str = "device"
    eos_token_ids: frozenset[int] = field(default_factory=frozenset)
    max_positions: int | None = None
    last_used: float = field(default_factory=time.monotonic)
    tool_call_format: ToolCallFormat | None = None
    """The format it writes tool calls in, when its config names one or its folder's template
    shows one (``FolderInfo.tool_call_format``)."""


def load_model(name: str, info: FolderInfo, device: str, dtype: str) -> LoadedModel:
    """Load ``info``'s folder onto ``device`` in ``dtype``; errors name the folder."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    auto = transformers.AutoModelForCausalLM if info.kind == "chat" else transformers.AutoModel
    where = str(info.path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=True)
        model = auto.from_pretrained(
            where, dtype=getattr(torch, dtype), local_files_only=True, device_map=device
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # safetensors' own error class derives from Exception only: caught by name below.
        raise ModelFolderError(where, f"could not be loaded: {_first_line(exc)}") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelFolderError(where, f"has corrupt weights: {_first_line(exc)}") from exc
    model.eval()
    if info.kind == "chat":  # the decode loop left-pads; encoders keep their absolute positions
        use_packed_decode_attention(model)
        tokenizer.padding_side = "left"
    else:
        tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    nbytes = sum(t.numel() * t.element_size() for t in model.parameters())
    nbytes += sum(t.numel() * t.element_size() for t in model.buffers())
    return LoadedModel(
        name=name,
        kind=info.kind,
        model=model,
        tokenizer=tokenizer,
        nbytes=nbytes,
        device=device,
        eos_token_ids=_eos_ids(model, tokenizer),
        max_positions=getattr(model.config, "max_position_embeddings", None),
        tool_call_format=info.tool_call_format,
    )


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    generation = getattr(model, "generation_config", None)
    for value in (getattr(generation, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
