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


# Models whose chat templates write tool calls in Llama 3's and Mistral's two formats (the tiny
# models above write Hermes'): (architecture, chat format, seed).
TOOL_FORMAT_MODELS = {
    "llama3-tools": ("llama", "llama3", 6),
    "mistral-tools": ("llama", "mistral", 7),
    "mistral-v11-tools": ("llama", "mistral_v11", 8),
}


def build_tool_format_models(root: Path) -> dict[str, Path]:
    """Build (or reuse) the models of ``TOOL_FORMAT_MODELS`` under ``root``: name -> folder."""
    from skillswitch.inference.tiny import build_model

    folders: dict[str, Path] = {}
    for name, (arch, chat_format, seed) in TOOL_FORMAT_MODELS.items():
        folder = root / name
        if not (folder / "model.safetensors").exists():
            build_model(folder, arch=arch, seed=seed, chat_format=chat_format)  # type: ignore[arg-type]
        folders[name] = folder
    return folders


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


EAGER_OPENINGS = {
    "chatml": "<tool_call>",
    "llama3": "{",
    "mistral": "[TOOL_CALLS]",
    "mistral_v11": "[TOOL_CALLS]",
}
"""The token that opens a call in each chat format's tool-call format."""
EAGER_CLOSINGS = {"mistral": "]"}
"""A token that ends the calls, preferred next (else Mistral's list would go on with ", ",
first in token order, until the budget runs out)."""


def build_eager_tool_caller(folder: Path, chat_format: str = "chatml") -> Path:
    """A tiny model that calls a tool whenever it may (built once per folder), its template
    and tokenizer those of ``chat_format`` (``inference.tiny_templates``).

    With ``chatml`` its tokenizer has ``<tool_call>`` and ``</tool_call>`` as single tokens,
    as Qwen2.5's has; Mistral's has ``[TOOL_CALLS]`` as a special token; Llama 3's opens a
    call with ``{``. Its weights are set, not random, so that every step's logits are the same
    fixed preference (and Mistral's, for the ``]`` that ends its list of calls, next): the
    layers add nothing to the residual stream, whose first dimension is
    a large constant, and the output layer reads only that dimension. So the model writes the
    opening first, wherever a grammar lets it, then whatever the grammar leaves open in token
    order; without a grammar it writes the opening over and over. It exercises a real tool
    loop through the real loader and decoder with no trained model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from skillswitch.inference.tiny import build_model

    if (folder / "model.safetensors").exists():
        return folder
    build_model(folder, arch="qwen2", seed=5, chat_format=chat_format)  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if chat_format == "chatml":
        tokenizer.add_tokens(["<tool_call>", "</tool_call>"])
    opening = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(EAGER_OPENINGS[chat_format])[0])
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
        preference[opening] = 1.0
        if chat_format in EAGER_CLOSINGS:
            closing = tokenizer.tokenize(EAGER_CLOSINGS[chat_format])[0]
            preference[tokenizer.convert_tokens_to_ids(closing)] = 0.5
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = preference
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
