"""Decode-step attention that reads each key/value head once, under ``torch.compile`` too.

In a decode step each row has one query token, and a grouped-query model (Qwen2.5-1.5B: 12 query
heads, 2 key/value heads) shares each key/value head among several query heads. Given an
attention mask, transformers' SDPA attention either packs a group's query heads into the query
dimension (transformers >= 5.24, and only when not compiled) or copies each key/value head once
per query head (``repeat_kv``) before attending. The copy writes and reads the whole KV cache
again, several times over, in every layer: for a 1.5B model at batch 64 with 512 positions that is
about 11 GB a step, three times the weights, and it is what a compiled step did.

``skillswitch_sdpa`` packs the query heads in every decode step, compiled or not, and hands
everything else (prefill, a mask per head, position biases) to transformers' SDPA attention
unchanged. :func:`use_packed_decode_attention` switches a loaded model to it; the mask is built
as for SDPA.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = [
    "ATTENTION_NAME",
    "attention_kernels",
    "packed_decode_attention",
    "use_packed_decode_attention",
]

logger = logging.getLogger(__name__)

ATTENTION_NAME = "skillswitch_sdpa"
"""The attention implementation's name in transformers' ``AttentionInterface``."""


def packed_decode_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' SDPA attention, with a decode step's grouped query heads packed so each
    key/value head is read once (``query``: batch x heads x 1 x dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    mask = attention_mask
    shared_mask = mask is None or (mask.ndim == 4 and mask.shape[1] == 1)  # one for all heads
    plain = kwargs.get("position_bias") is None and kwargs.get("softcap") is None
    if query.shape[2] != 1 or groups == 1 or not shared_mask or not plain:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    batch, heads, _, dim = query.shape
    # Query head h reads key/value head h // groups (repeat_kv's order): a group's heads become
    # the query positions of its key/value head. A mask shared by the heads broadcasts over them.
    packed = query.reshape(batch, heads // groups, groups, dim)
    output = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    return output.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def attention_kernels(device: Any) -> Any:
    """Flash or memory-efficient attention on CUDA, never cuDNN's: cuDNN builds a new execution
    plan whenever the sequence length changes, which in decoding is every step (measured on an
    H200: 1.3 ms of CPU per layer per step, 64% of a 1.5B model's decode step). A context for
    the forward calls (a compiled step takes the kernels chosen while it is compiled)."""
    import contextlib

    if getattr(device, "type", str(device)) != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(backends)


def use_packed_decode_attention(model: Any) -> bool:
    """Switch ``model`` from SDPA to :func:`packed_decode_attention` when it has grouped key/value
    heads; whether it was switched. Models on other implementations are left as they are."""
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not heads or not kv_heads or kv_heads >= heads:
        return False
    _register()
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (ValueError, ImportError, AttributeError) as error:
        logger.info("%s keeps SDPA attention: %s", type(model).__name__, error)
        return False
    return bool(config._attn_implementation == ATTENTION_NAME)


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, packed_decode_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
