"""The cross-encoder verifier of "no tool applies": its pair texts and training pairs, the gate
in relevance units, and a real ``fit tools --verifier`` that trains, exports and gates it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from skillswitch.exceptions import ArtifactError
from skillswitch.tools.fitting import (
    MANIFEST_NAME,
    ToolFitResult,
    ToolFitSettings,
    examples_from,
    fit_tool_encoder,
    fitted_settings,
    load_tool_encoder,
)
from skillswitch.tools.retrieval import ToolIndex
from skillswitch.tools.verifier import (
    VERIFIER_FOLDER,
    VerifierGate,
    fit_gate,
    pair_text,
    verifier_pairs,
    verifier_tool_text,
)
from tests.tools.test_evidence import OFF_TOPIC, SPECIFIC, TOOLS, VAGUE, _bfcl_style

FLIGHTS, HOTEL, EMAIL, EVENT = TOOLS


def test_the_pair_text_names_the_required_and_optional_parameters() -> None:
    assert verifier_tool_text(FLIGHTS).endswith(
        "Required: origin; destination; date. Optional: none."
    )
    described = replace(
        FLIGHTS,
        input_schema={
            "type": "object",
            "properties": {
                "origin": {"type": "string", "description": "IATA code of the departure"},
                "cabin": {"type": "string"},
            },
            "required": ["origin"],
        },
    )
    assert verifier_tool_text(described).endswith(
        "Required: origin: IATA code of the departure. Optional: cabin."
    )
    assert pair_text("  fly   to Oslo ", FLIGHTS).startswith("fly to Oslo [SEP] ")


def test_training_pairs_label_the_tool_and_the_others() -> None:
    pairs = verifier_pairs(
        [("fly to Oslo", FLIGHTS, (HOTEL, EMAIL)), ("tell me a joke", None, (HOTEL, EMAIL, EVENT))]
    )
    assert [p.serves for p in pairs] == [True, False, False, False]
    assert pairs[0].text == pair_text("fly to Oslo", FLIGHTS)
    assert {p.text.split(" [SEP] ")[0] for p in pairs[2:]} == {"tell me a joke"}


def test_the_gate_is_written_in_relevance_units() -> None:
    rng = np.random.default_rng(0)
    applies = rng.random(600) < 0.5
    relevance = rng.normal(0.5, 0.1, 600) + 0.1 * applies
    logits = rng.normal(0.0, 1.0, 600) + 2.0 * applies  # the verdict separates them better
    gate = fit_gate(relevance, logits, applies.tolist())
    assert gate is not None
    assert gate.weight > 0
    # A request the verifier believes is lifted above one it doubts, at the same relevance.
    assert gate.adjust(0.5, 3.0) > gate.adjust(0.5, -1.0)
    assert fit_gate(relevance, logits, [True] * 600) is None
    assert VerifierGate.from_json(gate.to_json(), "x") == gate
    with pytest.raises(ValueError, match="x: the verifier's 'gate' is malformed"):
        VerifierGate.from_json({"mean": 0.0}, "x")
    with pytest.raises(ValueError, match="scale > 0"):
        VerifierGate(0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def fitted_with_verifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToolFitResult]:
    """A short fit (40 steps each for the encoder and the verifier, ~1 min) trained on half of
    the specific requests and half of the vague ones; the gate and the threshold are fitted on
    all specific requests, the other vague half and off-topic requests."""
    train = _bfcl_style({tool: texts[::2] for tool, texts in SPECIFIC.items()}, VAGUE[1::2])
    out = tmp_path_factory.mktemp("verifier") / "tool-encoder"
    result = fit_tool_encoder(
        examples_from(train),
        out,
        settings=ToolFitSettings(max_steps=40, verifier=True),
        validation=[_bfcl_style(SPECIFIC, VAGUE[::2] + OFF_TOPIC)],
    )
    return out, result


def test_a_fit_trains_exports_and_gates_the_verifier(
    fitted_with_verifier: tuple[Path, ToolFitResult],
) -> None:
    out, result = fitted_with_verifier
    scores = result.validation
    assert scores is not None
    assert scores.verifier
    assert scores.evidence
    assert scores.threshold_without_verifier is not None
    assert scores.rejected_without_verifier is not None
    assert (out / VERIFIER_FOLDER / "model.onnx").is_file()
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["verifier"]["folder"] == VERIFIER_FOLDER
    assert manifest["threshold"] == scores.threshold
    settings = fitted_settings(out)
    verifier = settings.verifier
    assert verifier is not None
    assert manifest["verifier"]["gate"] == verifier.gate.to_json()
    # The verifier learnt the task: on vague requests it never saw, the most relevant tool is
    # judged less likely to serve than the specific requests' own tools.
    specific = [
        float(verifier.logits(text, [entry])[0])
        for entry in TOOLS
        for text in SPECIFIC[entry.name][1::2]
    ]
    vague = [float(np.max(verifier.logits(text, TOOLS))) for text in VAGUE[::2]]
    assert np.mean(specific) > np.mean(vague), (specific, vague)


def test_a_search_gates_the_best_tool_by_the_verdict(
    fitted_with_verifier: tuple[Path, ToolFitResult],
) -> None:
    out, _ = fitted_with_verifier
    settings = fitted_settings(out)
    assert settings.verifier is not None
    encoder = load_tool_encoder(out)
    gated = ToolIndex(TOOLS, encoder, settings=settings)
    ungated = ToolIndex(TOOLS, encoder, settings=replace(settings, verifier=None))
    for request in ("I want to book a flight", "flights from Boston to Denver on May 3"):
        found, plain = gated.search(request), ungated.search(request)
        assert found.names == plain.names  # the ranking is retrieval's
        assert plain.verdict is None
        assert found.verdict is not None
        best = max(plain.hits, key=lambda hit: hit.relevance).entry
        assert found.verdict == pytest.approx(float(settings.verifier.logits(request, [best])[0]))
        assert found.relevance == pytest.approx(
            settings.verifier.gate.adjust(plain.relevance, found.verdict)
        )


def test_a_verifier_without_its_export_or_with_a_bad_head_is_named(
    fitted_with_verifier: tuple[Path, ToolFitResult], tmp_path: Path
) -> None:
    out, _ = fitted_with_verifier
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    manifest = json.loads((broken / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["verifier"]["weights"] = [1.0, 2.0]
    (broken / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"head has 2 weights for a 384-dimensional"):
        fitted_settings(broken)
    shutil.rmtree(broken / VERIFIER_FOLDER)
    with pytest.raises(ArtifactError, match="verifier"):
        fitted_settings(broken)


def test_no_verifier_is_kept_without_held_out_no_tool_requests(tmp_path: Path) -> None:
    train = _bfcl_style(
        {"search_flights": ["fly to Oslo Friday"], "send_email": ["email Ann 'Hi'"]},
        ["what is a hotel"],
    )
    result = fit_tool_encoder(
        examples_from(train),
        tmp_path / "enc",
        settings=ToolFitSettings(max_steps=1, verifier=True),
        validation=[_bfcl_style(SPECIFIC, OFF_TOPIC[:3])],
    )
    assert result.validation is not None
    assert not result.validation.verifier
    assert not (tmp_path / "enc" / VERIFIER_FOLDER).exists()
    assert json.loads((tmp_path / "enc" / MANIFEST_NAME).read_text())["verifier"] is None
