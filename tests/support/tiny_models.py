"""Tiny random-weight models of real architectures, built once per run and saved as folders.

They load through the same code path as users' model folders (``skillswitch.inference``):
two Llama-style experts, one Qwen2-style expert, and a BERT-style encoder for embeddings.
"""

from __future__ import annotations

from pathlib import Path

TINY_MODELS = {
    "llama-a": ("llama", 1),
    "llama-b": ("llama", 2),
    "qwen-a": ("qwen2", 3),
    "bert-a": ("bert", 4),
}


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Build (or reuse) every tiny model under ``root``: name -> folder."""
    from skillswitch.inference.tiny import build_model

    folders: dict[str, Path] = {}
    for name, (arch, seed) in TINY_MODELS.items():
        folder = root / name
        if not (folder / "model.safetensors").exists():
            build_model(folder, arch=arch, seed=seed)  # type: ignore[arg-type]
        folders[name] = folder
    return folders
