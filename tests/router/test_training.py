from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skillswitch.config import parse_config
from skillswitch.evals import load_labelled
from skillswitch.exceptions import ArtifactError, DatasetError
from skillswitch.router import Router
from skillswitch.router.trained import load_trained_router, read_artifact
from skillswitch.router.training import FitSettings, fit_intents, holdout_split
from tests.fixtures import tiny_intents


def fit(tmp_path: Path, cache_root: Path, settings: FitSettings) -> Path:
    paths = tiny_intents.write(tmp_path)
    train, val = load_labelled(paths["train"], "train"), load_labelled(paths["val"], "val")
    result = fit_intents(
        train.texts,
        train.labels,
        val.texts,
        val.labels,
        tmp_path / "artifact",
        oos_label="oos",
        settings=settings,
        cache_root=cache_root,
    )
    assert result.labels == ("greet", "math", "translate", "oos")
    return result.folder


def test_linear_fit_writes_an_artifact_the_config_can_load(
    tmp_path: Path, cache_root: Path
) -> None:
    folder = fit(tmp_path, cache_root, FitSettings(method="linear", max_steps=100))
    artifact = read_artifact(folder)
    assert artifact.method == "linear"
    assert artifact.calibration is not None
    assert artifact.calibration.in_scope_items == 6
    assert artifact.calibration.out_of_scope_items == 2
    assert [t.feature for t in artifact.terms] == ["energy", "nearest", "oos_nearest"]
    assert artifact.bank is not None
    assert artifact.bank.shape == (24, 384)  # the in-scope training items
    assert artifact.oos_bank is not None
    assert artifact.oos_bank.shape == (6, 384)
    config = parse_config(
        f"router:\n  classifier: {{kind: trained, artifact: '{folder}'}}\nout_of_scope: {{label: oos}}\n"
    )
    router = Router.from_config(config, cache_dir=cache_root)
    assert router.threshold == artifact.threshold
    assert router.skills == ("greet", "math", "translate")
    assert router.route("what is 9 times 9").skill_names[0] == "math"
    assert router.route("how do you say bread in german").skill_names[0] == "translate"
    decision = router.route("hello my friend")
    assert decision.candidates[0].skill == "greet"
    probabilities = sum(c.score for c in decision.candidates)
    assert probabilities <= 1.0 + 1e-5  # head scores are probabilities


def test_finetune_changes_the_encoder_and_exports_it(tmp_path: Path, cache_root: Path) -> None:
    folder = fit(tmp_path, cache_root, FitSettings(method="finetune", max_steps=4, batch_size=8))
    manifest = json.loads((folder / "encoder" / "encoder.json").read_text())
    assert manifest["name"] == "all-MiniLM-L6-v2-tuned"
    router = load_trained_router(folder, out_of_scope_label="oos")
    base = Router.from_examples(router.encoder, {"x": ["y"]})  # the tuned encoder is a real encoder
    assert base.encoder.encode(["hi"]).shape == (1, 384)
    provenance = read_artifact(folder).provenance
    assert provenance["steps"] == 4
    assert provenance["train_items"] == 30


def test_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        read_artifact(tmp_path / "missing")
    with pytest.raises(ArtifactError, match="not a classifier artifact"):
        read_artifact(tmp_path)
    (tmp_path / "artifact.json").write_text('{"format": 99}')
    with pytest.raises(ArtifactError, match="format 99"):
        read_artifact(tmp_path)


def test_fit_needs_two_labels(tmp_path: Path, cache_root: Path) -> None:
    with pytest.raises(DatasetError, match="two in-scope labels"):
        fit_intents(
            ["a", "b"],
            ["x", "oos"],
            ["c"],
            ["x"],
            tmp_path / "o",
            oos_label="oos",
            cache_root=cache_root,
        )


def test_holdout_split_is_stratified_and_disjoint() -> None:
    labels = ["a"] * 20 + ["b"] * 10 + ["c"]
    train, val = holdout_split(["t"] * len(labels), labels, share=0.1)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(labels)))
    held = [labels[i] for i in val]
    assert held.count("a") == 2
    assert held.count("b") == 1
    assert "c" not in held  # a single example stays in training
    assert np.all(np.diff(train) > 0)


def test_without_out_of_scope_data_nothing_is_rejected(tmp_path: Path, cache_root: Path) -> None:
    texts = [t for label, items in tiny_intents.TRAIN.items() if label != "oos" for t in items]
    labels = [label for label, items in tiny_intents.TRAIN.items() if label != "oos" for _ in items]
    val_texts = [t for label, items in tiny_intents.VAL.items() if label != "oos" for t in items]
    val_labels = [
        label for label, items in tiny_intents.VAL.items() if label != "oos" for _ in items
    ]
    result = fit_intents(
        texts,
        labels,
        val_texts,
        val_labels,
        tmp_path / "a",
        oos_label="oos",
        settings=FitSettings(method="linear", max_steps=50),
        cache_root=cache_root,
    )
    assert result.calibration.objective == "keep-100%"
    assert result.calibration.out_of_scope_recall is None
    router = load_trained_router(result.folder, out_of_scope_label="oos")
    assert [t.feature for t in read_artifact(result.folder).terms] == ["energy", "nearest"]
    assert not any(d.out_of_scope for d in router.route_many(val_texts))
