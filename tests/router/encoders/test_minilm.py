from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skillswitch.config import MiniLMEncoderConfig
from skillswitch.exceptions import ArtifactError, ConfigError
from skillswitch.router.encoders import (
    Encoder,
    OnnxEncoder,
    build_encoder,
    quantize_encoder,
    tool_retrieval_encoder,
)
from skillswitch.router.encoders.quantize import MIN_INT8_COSINE

TEXTS = [
    "what is 17 times 23",
    "translate good morning into french",
    "",
    "how do I reverse a linked list in python " * 40,  # past the 256-token window
    "¿dónde está la estación de tren?",
]


def test_onnx_runtime_matches_sentence_transformers(cache_root: Path) -> None:
    reference = build_encoder(MiniLMEncoderConfig(runtime="torch"), cache_root)
    float32 = build_encoder(MiniLMEncoderConfig(precision="float32"), cache_root)
    ours = float32.encode(TEXTS)
    theirs = reference.encode(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() > 0.9999, cosines
    assert reference.identity != float32.identity  # caches never mix runtimes


def test_default_encoder_is_int8_close_to_float32_and_quantised_once(
    minilm: OnnxEncoder, cache_root: Path
) -> None:
    float32 = build_encoder(MiniLMEncoderConfig(precision="float32"), cache_root)
    assert isinstance(float32, OnnxEncoder)
    assert (minilm.precision, float32.precision) == ("int8", "float32")
    assert minilm.name == "all-MiniLM-L6-v2 (onnx int8)"
    assert len({minilm.identity, float32.identity}) == 2  # caches never mix precisions
    int8 = minilm.encode(TEXTS)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(int8 * float32.encode(TEXTS), axis=1)
    assert cosines.min() > MIN_INT8_COSINE, cosines
    assert cosines.mean() > 0.98, cosines
    quantised = minilm.folder / "model.int8.onnx"
    stamp = quantised.stat().st_mtime_ns
    again = build_encoder(MiniLMEncoderConfig(precision="int8"), cache_root)
    assert again.identity == minilm.identity
    assert quantised.stat().st_mtime_ns == stamp  # reused, not quantised again
    assert not [p for p in minilm.folder.iterdir() if p.name.startswith(".")]  # no staging left


def test_missing_or_damaged_int8_model_is_an_artifact_error(
    tmp_path: Path, minilm: OnnxEncoder
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("encoder.json", "tokenizer.json", "model.onnx"):
        (folder / name).symlink_to(minilm.folder / name)
    with pytest.raises(ArtifactError, match=r"lacks model\.int8\.onnx.*quantize_encoder"):
        OnnxEncoder(folder, precision="int8")
    (folder / "model.int8.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        OnnxEncoder(folder, precision="int8")
    (folder / "model.int8.onnx").unlink()
    assert quantize_encoder(folder) == folder / "model.int8.onnx"  # the real quantiser, again
    assert OnnxEncoder(folder, precision="int8").encode(["hi"]).shape == (1, 384)


def test_int8_without_a_float32_model_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"lacks model\.onnx"):
        quantize_encoder(tmp_path)


def test_embeddings_are_unit_length_and_batching_preserves_order(minilm: Encoder) -> None:
    texts = [
        f"request number {i} about {'cats' if i % 2 else 'unit conversion'}" * (1 + i % 5)
        for i in range(150)
    ]
    batched = minilm.encode(texts)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([minilm.encode([t]) for t in texts[::37]])
    assert np.allclose(batched[::37], singles, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(minilm: Encoder) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_missing_model_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_encoder(MiniLMEncoderConfig(model=tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        build_encoder(MiniLMEncoderConfig(model=tmp_path / "empty"), tmp_path)


def test_damaged_export_is_an_artifact_error(tmp_path: Path, minilm: OnnxEncoder) -> None:
    with pytest.raises(ArtifactError, match="not an exported encoder"):
        OnnxEncoder(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("encoder.json", "tokenizer.json"):
        (broken / name).write_bytes((minilm.folder / name).read_bytes())
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot be loaded"):
        OnnxEncoder(broken)


def test_custom_model_folder_exports_once(tmp_path: Path, cache_root: Path) -> None:
    from skillswitch.router.encoders import bundled_model_folder

    source = bundled_model_folder()
    copy = tmp_path / "my-minilm"
    copy.mkdir()
    for item in source.rglob("*"):
        if item.is_file() and item.suffix in {".json", ".safetensors", ".txt"}:
            target = copy / item.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(item)
    encoder = build_encoder(MiniLMEncoderConfig(model=copy), tmp_path / "cache")
    assert encoder.name == "my-minilm (onnx int8)"
    exported = list((tmp_path / "cache" / "encoders").iterdir())
    assert len(exported) == 1
    stamp = (exported[0] / "model.onnx").stat().st_mtime_ns
    build_encoder(MiniLMEncoderConfig(model=copy), tmp_path / "cache")
    assert (exported[0] / "model.onnx").stat().st_mtime_ns == stamp  # reused, not re-exported


def test_tool_retrieval_gets_float32_under_auto_and_what_was_asked_otherwise(
    minilm: OnnxEncoder, cache_root: Path
) -> None:
    auto = tool_retrieval_encoder(minilm, MiniLMEncoderConfig())
    assert isinstance(auto, OnnxEncoder)
    assert (auto.precision, auto.folder, auto.threads) == ("float32", minilm.folder, 1)
    assert tool_retrieval_encoder(minilm, MiniLMEncoderConfig(precision="int8")) is minilm
    float32 = build_encoder(MiniLMEncoderConfig(precision="float32"), cache_root)
    assert tool_retrieval_encoder(float32, MiniLMEncoderConfig(precision="float32")) is float32
    assert np.allclose(auto.encode(TEXTS), float32.encode(TEXTS), atol=1e-6)
