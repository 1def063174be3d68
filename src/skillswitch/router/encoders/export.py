"""Export a sentence-transformers folder to an ONNX encoder folder (needs torch, once).

The graph computes transformer -> pooling -> L2 normalisation, checked against
sentence-transformers on the same texts before the folder is published.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.exceptions import ArtifactError, MissingDependencyError
from skillswitch.router.encoders.onnx import (
    MANIFEST_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    OnnxEncoder,
    OnnxManifest,
)

__all__ = ["export_sentence_encoder", "save_sentence_folder"]

_CHECK_TEXTS = ("hello world", "convert 5 miles to kilometres", "¿dónde está la estación?")
_OPSET = 17


def export_sentence_encoder(
    source: Path, destination: Path, *, name: str, fingerprint: str, check: bool = True
) -> Path:
    """Write ``destination`` (model.onnx, tokenizer.json, encoder.json) from ``source``.

    ``source`` is a sentence-transformers folder: a Hugging Face model plus ``modules.json``
    and ``1_Pooling/config.json``. Publishing is atomic: a crash leaves no half folder.
    """
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise MissingDependencyError(
            "exporting an encoder to ONNX", "train", exc.name or "torch"
        ) from None

    pooling = _pooling_mode(source)
    max_length = _max_length(source)
    if not (source / TOKENIZER_NAME).is_file():
        raise ArtifactError(
            f"{source} has no {TOKENIZER_NAME} (a fast tokenizer); save the model with a fast "
            "tokenizer, or use router.encoder.runtime: torch"
        )
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
    wrapper = _pooled_module(model, pooling, torch)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=destination.parent))
    try:
        example = {
            "input_ids": torch.tensor([[101, 7592, 2088, 102]]),
            "attention_mask": torch.ones(1, 4, dtype=torch.long),
            "token_type_ids": torch.zeros(1, 4, dtype=torch.long),
        }
        dynamic = {k: {0: "batch", 1: "sequence"} for k in example}
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter warns about tracing internals of transformers' attention
            # that do not affect a fixed-architecture encoder; the parity check below is the proof.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example["input_ids"], example["attention_mask"], example["token_type_ids"]),
                str(staging / MODEL_NAME),
                input_names=list(example),
                output_names=["embedding"],
                dynamic_axes={**dynamic, "embedding": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
        shutil.copy2(source / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        manifest = OnnxManifest(
            name=name,
            source_fingerprint=fingerprint,
            dimension=int(model.config.hidden_size),
            max_length=max_length,
            pooling=pooling,
            inputs=tuple(example),
        )
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2), "utf-8")
        if check:
            _check_parity(staging, wrapper, torch)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return destination


def save_sentence_folder(
    model: Any, tokenizer: Any, source: Path, destination: Path, note: dict[str, Any]
) -> Path:
    """Save a fine-tuned transformer of the sentence-transformers folder ``source`` as a
    sentence-transformers folder (``source``'s pooling and module files, ``note`` in
    ``skillswitch-finetune.json``), ready for :func:`export_sentence_encoder`."""
    model.save_pretrained(str(destination))
    tokenizer.save_pretrained(str(destination))
    for name in ("modules.json", "sentence_bert_config.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    if (source / "1_Pooling").is_dir():
        shutil.copytree(source / "1_Pooling", destination / "1_Pooling")
    (destination / "skillswitch-finetune.json").write_text(json.dumps(note), encoding="utf-8")
    return destination


def _pooled_module(model: Any, pooling: str, torch: Any) -> Any:
    """Transformer + pooling + normalisation as one traceable module (torch is imported lazily,
    so the class is defined here rather than at module level)."""

    class Pooled(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)

    return Pooled().eval()


def _pooling_mode(source: Path) -> str:
    modules_file = source / "modules.json"
    if not modules_file.is_file():
        return (
            "mean"  # a plain transformers folder: mean pooling is the sentence-transformers default
        )
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in {"Transformer", "Pooling", "Normalize"}]
    if unsupported:
        raise ArtifactError(
            f"{source} has sentence-transformers modules {unsupported} that the ONNX export does "
            "not support; use router.encoder.runtime: torch for this model"
        )
    pooling_file = next(
        (
            source / m["path"] / "config.json"
            for m in modules
            if str(m.get("type", "")).endswith("Pooling")
        ),
        None,
    )
    if pooling_file is None or not pooling_file.is_file():
        return "mean"
    config = json.loads(pooling_file.read_text(encoding="utf-8"))
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise ArtifactError(
        f"{pooling_file}: only mean or CLS pooling export to ONNX; use runtime: torch"
    )


def _max_length(source: Path) -> int:
    config_file = source / "sentence_bert_config.json"
    if config_file.is_file():
        value = json.loads(config_file.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    return 256


def _check_parity(folder: Path, wrapper: Any, torch: Any) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_NAME))
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(list(_CHECK_TEXTS))
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        expected = wrapper(ids, mask, torch.zeros_like(ids)).numpy()
    actual = OnnxEncoder(folder, threads=1).encode(list(_CHECK_TEXTS))
    cosine = float(np.min(np.sum(expected * actual, axis=1)))
    if cosine < 0.9999:
        raise ArtifactError(
            f"ONNX export of {folder} disagrees with PyTorch (min cosine {cosine:.6f}); "
            "use router.encoder.runtime: torch"
        )
