from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skillswitch.config import MiniLMEncoderConfig
from skillswitch.exceptions import ArtifactError, ConfigError
from skillswitch.router.encoders import Encoder, OnnxEncoder, build_encoder

TEXTS = [
    "what is 17 times 23",
    "translate good morning into french",
    "",
    "how do I reverse a linked list in python " * 40,  # past the 256-token window
    "¿dónde está la estación de tren?",
]


def test_onnx_runtime_matches_sentence_transformers(minilm: Encoder, cache_root: Path) -> None:
    reference = build_encoder(MiniLMEncoderConfig(runtime="torch"), cache_root)
    ours = minilm.encode(TEXTS)
    theirs = reference.encode(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() > 0.9999, cosines
    assert reference.identity != minilm.identity  # caches never mix runtimes


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
    assert encoder.name == "my-minilm (onnx)"
    exported = list((tmp_path / "cache" / "encoders").iterdir())
    assert len(exported) == 1
    stamp = (exported[0] / "model.onnx").stat().st_mtime_ns
    build_encoder(MiniLMEncoderConfig(model=copy), tmp_path / "cache")
    assert (exported[0] / "model.onnx").stat().st_mtime_ns == stamp  # reused, not re-exported
