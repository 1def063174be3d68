"""Random-weight models of real architectures, saved as ordinary model folders.

The tests, the benchmarks and users' own tests need local models without a model hub: these
builders make a byte-level BPE tokenizer with a chat template (ChatML, Llama 3's or Mistral's:
``tiny_templates``) and a Llama-, Qwen2- or BERT-style model from a config, then
``save_pretrained`` both, so the folder loads through the same code path as a downloaded model.
``SHAPES`` also holds the real sizes (1.5B, 7B) that the GPU benchmark uses.

>>> folder = build_model("/tmp/tiny-llama", arch="llama", seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from skillswitch.inference.tiny_templates import CHAT_FORMATS, ChatFormatName

__all__ = ["SHAPES", "Architecture", "ModelShape", "build_model", "build_tokenizer", "model_config"]

Architecture = Literal["llama", "qwen2", "bert"]

# Text the tokenizer's merges are learned from: enough English, digits and code for words to
# become a few tokens each rather than one token per byte.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "What is the capital of France? Paris is the capital and largest city of France.",
    "Solve for x: 3x + 5 = 20. Subtract five from both sides, then divide by three: x = 5.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # prints 5",
    "Translate to German: good morning, how are you? Guten Morgen, wie geht es dir?",
    "The mitochondria is the powerhouse of the cell; photosynthesis happens in chloroplasts.",
    "Write a short poem about the sea, the wind, the sky and the stars at night.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 2.71828 42 17 99 -1 +=*/%()[]{}<>",
    "You are a helpful assistant. Answer the question briefly and correctly.",
    "user assistant system message content role name tool function call result",
]


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The sizes that make a config; ``tiny`` runs in milliseconds on a CPU."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int | None = None
    """None: the tokenizer's own size (tiny models); real shapes keep their real vocabulary."""
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False


SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape(64, 128, 2, 4, 2),
    "small": ModelShape(256, 768, 4, 8, 2),
    # Qwen2.5-1.5B and Qwen2.5-7B (their published configs), for the GPU benchmark.
    "1.5b": ModelShape(1536, 8960, 28, 12, 2, 151_936, 32768, tie_word_embeddings=True),
    "7b": ModelShape(3584, 18944, 28, 28, 4, 152_064, 32768),
}


def build_tokenizer(
    folder: str | Path, *, vocab_size: int = 512, chat_format: ChatFormatName = "chatml"
) -> Any:
    """Train a byte-level BPE on a small built-in corpus and save it with the chat template of
    ``chat_format`` (``tiny_templates``) and its special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    form = CHAT_FORMATS[chat_format]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(form.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    named = {form.eos, form.pad, form.bos}
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        eos_token=form.eos,
        pad_token=form.pad,
        bos_token=form.bos,
        additional_special_tokens=[t for t in form.special_tokens if t not in named],
    )
    tokenizer.chat_template = form.template
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def build_model(
    folder: str | Path,
    *,
    arch: Architecture = "llama",
    shape: str | ModelShape = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    initializer_range: float = 0.02,
    chat_format: ChatFormatName = "chatml",
) -> Path:
    """Build a random-weight model of ``arch`` and ``shape`` with a tokenizer in ``folder``
    whose chat template is ``chat_format``'s.

    The same seed gives the same weights; different seeds give different "experts".
    """
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, chat_format=chat_format)
    size = SHAPES[shape] if isinstance(shape, str) else shape
    config = model_config(arch, size, tokenizer, initializer_range)
    torch.manual_seed(seed)
    model = _model_class(arch)(config).to(getattr(torch, dtype))
    model.save_pretrained(str(folder))
    return folder


def model_config(
    arch: Architecture, size: ModelShape, tokenizer: Any, init_range: float = 0.02
) -> Any:
    """A transformers config of ``arch`` with ``size``, its special tokens from ``tokenizer``."""
    from transformers import BertConfig, LlamaConfig, Qwen2Config

    vocab = size.vocab_size or len(tokenizer)
    if arch == "bert":
        return BertConfig(
            vocab_size=vocab,
            hidden_size=size.hidden_size,
            intermediate_size=size.intermediate_size,
            num_hidden_layers=size.num_hidden_layers,
            num_attention_heads=size.num_attention_heads,
            max_position_embeddings=size.max_position_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            initializer_range=init_range,
            architectures=["BertModel"],
        )
    common: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": size.hidden_size,
        "intermediate_size": size.intermediate_size,
        "num_hidden_layers": size.num_hidden_layers,
        "num_attention_heads": size.num_attention_heads,
        "num_key_value_heads": size.num_key_value_heads,
        "max_position_embeddings": size.max_position_embeddings,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": None,
        "initializer_range": init_range,
        "tie_word_embeddings": size.tie_word_embeddings,
    }
    if arch == "llama":
        return LlamaConfig(**common, architectures=["LlamaForCausalLM"])
    return Qwen2Config(**common, architectures=["Qwen2ForCausalLM"])


def _model_class(arch: Architecture) -> Any:
    from transformers import BertModel, LlamaForCausalLM, Qwen2ForCausalLM

    return {"llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM, "bert": BertModel}[arch]


def describe(folder: str | Path) -> dict[str, Any]:
    """The architecture and sizes recorded in a model folder (for benchmark reports)."""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    keys = ("architectures", "hidden_size", "num_hidden_layers", "vocab_size", "torch_dtype")
    return {key: config.get(key) for key in keys}
