"""Encoders: the ``Encoder`` protocol, MiniLM on ONNX Runtime or PyTorch, OpenAI-compatible
endpoints, and the on-disk embedding cache."""

from skillswitch.router.encoders.base import Embeddings, Encoder, normalise
from skillswitch.router.encoders.cache import CachedEncoder, EmbeddingCache
from skillswitch.router.encoders.factory import (
    BUNDLED_MODEL_NAME,
    build_encoder,
    bundled_model_folder,
    prepare_onnx_encoder,
    tool_retrieval_encoder,
)
from skillswitch.router.encoders.onnx import OnnxEncoder
from skillswitch.router.encoders.openai_endpoint import OpenAIEmbeddingEncoder
from skillswitch.router.encoders.quantize import quantize_encoder

__all__ = [
    "BUNDLED_MODEL_NAME",
    "CachedEncoder",
    "EmbeddingCache",
    "Embeddings",
    "Encoder",
    "OnnxEncoder",
    "OpenAIEmbeddingEncoder",
    "build_encoder",
    "bundled_model_folder",
    "normalise",
    "prepare_onnx_encoder",
    "quantize_encoder",
    "tool_retrieval_encoder",
]
