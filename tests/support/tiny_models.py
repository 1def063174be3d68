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


def build_eager_tool_caller(folder: Path) -> Path:
    """A tiny Qwen2-style model that calls a tool whenever it may (built once per folder).

    Its tokenizer has ``<tool_call>`` and ``</tool_call>`` as single tokens, as Qwen2.5's has.
    Its weights are set, not random, so that every step's logits are the same fixed preference:
    the layers add nothing to the residual stream, whose first dimension is a large constant,
    and the output layer reads only that dimension. So the model writes ``<tool_call>``
    first, wherever a grammar lets it, then whatever the grammar leaves open in token order;
    without a grammar it writes ``<tool_call>`` over and over. It exercises a real tool loop
    through the real loader and decoder with no trained model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from skillswitch.inference.tiny import build_model

    if (folder / "model.safetensors").exists():
        return folder
    build_model(folder, arch="qwen2", seed=5)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["<tool_call>", "</tool_call>"])
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 50.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        preference = torch.zeros(len(tokenizer))
        preference[tokenizer.convert_tokens_to_ids("<tool_call>")] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = preference
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
