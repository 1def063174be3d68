"""Argument evidence: the request's measures, the correction's fit, its use by a ToolIndex, and
a real ``fit tools`` that fits it on held-out requests and hands it to a Switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skillswitch.config import parse_config
from skillswitch.evals.tools import ToolEvalData, ToolQuery
from skillswitch.exceptions import ArtifactError
from skillswitch.router.encoders import Encoder
from skillswitch.switch import Switch
from skillswitch.tools.evidence import (
    EVIDENCE_MEASURES,
    EvidenceModel,
    evidence_measures,
    fit_evidence_model,
    request_measures,
    required_parameters,
)
from skillswitch.tools.fitting import (
    MANIFEST_NAME,
    ToolFitResult,
    ToolFitSettings,
    examples_from,
    fit_tool_encoder,
    fitted_evidence,
)
from skillswitch.tools.retrieval import CatalogueEntry, RetrievalSettings, ToolIndex
from tests.support.cli import run
from tests.support.configs import DEFAULT_SKILLS


def test_request_measures_count_words_and_value_like_spans() -> None:
    assert request_measures("find me a train") == (4, 0)
    # a capitalised word that starts a sentence is not a value; names inside one are
    assert request_measures("Find a train from Boston to New York on May 3") == (11, 5)
    assert request_measures("Book it. Then email bob@example.com") == (7, 1)
    assert request_measures("open https://example.com and 'report'") == (6, 2)
    assert request_measures("search for '东京' hotels") == (4, 1)
    assert request_measures('the file "notes final.txt" please') == (6, 1)


def test_required_parameters_counts_named_requirements() -> None:
    assert required_parameters({"type": "object", "required": ["a", "b"]}) == 2
    assert required_parameters({"required": ["a", 3]}) == 1
    assert required_parameters({"required": "a"}) == 0
    assert required_parameters({}) == 0


def _synthetic(seed: int, size: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests whose tool applies when relevance is high and its arguments are given."""
    rng = np.random.default_rng(seed)
    relevance = rng.uniform(0.2, 0.8, size)
    words = rng.integers(2, 30, size)
    values = rng.integers(0, 5, size)
    required = rng.integers(0, 4, size).astype(np.float64)
    measures = np.vstack(
        [
            evidence_measures(int(w), int(v), np.array([r]))[0]
            for w, v, r in zip(words, values, required, strict=True)
        ]
    )
    covered = measures[:, EVIDENCE_MEASURES.index("covered")]
    odds = 12 * (relevance - 0.5) + 4 * (covered - 0.5)
    applies = rng.uniform(size=size) < 1 / (1 + np.exp(-odds))
    return relevance, measures, applies


def test_fit_recovers_the_weight_of_arguments_in_relevance_units() -> None:
    relevance, measures, applies = _synthetic(0)
    model = fit_evidence_model(relevance, measures, applies)
    assert model is not None
    covered = EVIDENCE_MEASURES.index("covered")
    # the log-odds grow 12 per unit of relevance and 4 per unit of coverage: a third of a unit
    # of relevance per unit of coverage (the relevance-only slope, the unit, is a little
    # flatter than 12, as leaving coverage out attenuates it)
    per_unit = model.weights[covered] / model.scale[covered]
    assert 0.25 < per_unit < 0.55, model
    assert 0.9 < model.relevance_weight < 1.5, model
    others = [abs(w) for i, w in enumerate(model.weights) if i != covered]
    assert max(others) < abs(model.weights[covered]) / 2, model


def test_fit_declines_without_both_kinds_or_a_relevance_signal() -> None:
    relevance, measures, applies = _synthetic(1)
    assert fit_evidence_model(relevance, measures, np.ones_like(applies)) is None
    # relevance alone lowers the odds: no relevance scale to write a correction in
    assert fit_evidence_model(-relevance, measures, applies) is None
    with pytest.raises(ValueError, match="399 relevances, 400 measure rows"):
        fit_evidence_model(relevance[:-1], measures, applies)


def test_the_model_round_trips_and_names_what_is_wrong() -> None:
    model = EvidenceModel(
        (2.0, 1.0, 1.0, 0.5), (1.0, 1.0, 1.0, 0.5), (0.0, -0.05, 0.02, 0.04), 1.1, -0.02
    )
    assert EvidenceModel.from_json(json.loads(json.dumps(model.to_json())), "f") == model
    with pytest.raises(ValueError, match="f: 'evidence' is not an evidence model"):
        EvidenceModel.from_json({"measures": ["words"]}, "f")
    with pytest.raises(ValueError, match="f: 'evidence' is malformed"):
        EvidenceModel.from_json({**model.to_json(), "mean": ["x", 1, 1, 1]}, "f")
    with pytest.raises(ValueError, match="one per measure"):
        EvidenceModel((1.0,), (1.0,), (1.0,))
    with pytest.raises(ValueError, match="scales > 0"):
        EvidenceModel((0.0,) * 4, (1.0, 1.0, 0.0, 1.0), (0.0,) * 4)
    with pytest.raises(ValueError, match="relevance_weight must be >= 0"):
        EvidenceModel((0.0,) * 4, (1.0,) * 4, (0.0,) * 4, -0.5)


# --- in retrieval and in a fit ---------------------------------------------------------------


def _tool(name: str, description: str, *required: str) -> CatalogueEntry:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p: {"type": "string"} for p in required},
        "required": list(required),
    }
    return CatalogueEntry("bfcl", name, description, schema)


TOOLS = (
    _tool("search_flights", "Search airline flights.", "origin", "destination", "date"),
    _tool("book_hotel", "Reserve a hotel room.", "city", "check_in", "nights"),
    _tool("send_email", "Send an email message.", "to", "subject"),
    _tool("create_event", "Add a calendar event.", "title", "start"),
)


def test_the_index_corrects_each_tools_relevance(minilm: Encoder) -> None:
    model = EvidenceModel(
        (2.0, 2.0, 1.0, 0.5), (1.0, 1.0, 1.0, 0.5), (0.0, -0.05, 0.02, 0.04), 1.2, -0.01
    )
    plain = ToolIndex(TOOLS, minilm)
    unit = EvidenceModel(model.mean, model.scale, model.weights)  # relevance_weight 1, no offset
    corrected = ToolIndex(TOOLS, minilm, settings=RetrievalSettings(evidence=model))
    required = {"search_flights": 3, "book_hotel": 3, "send_email": 2, "create_event": 2}
    for request in (
        "I want to book a flight",
        "Fly from Boston to Denver on May 3",
        # steps count for relevance; each is corrected by what the whole request gives
        "find flights from Boston to Denver on May 3, then email the plan to ann@example.com",
    ):
        before = plain.search(request, 4)
        found = corrected.search(request, 4)
        for hit in found.hits:
            (raw,) = [h.relevance for h in before.hits if h.name == hit.name]
            (expected,) = model.adjust([raw], request, [required[hit.name]])
            assert hit.relevance == pytest.approx(expected)
        assert found.relevance == pytest.approx(max(h.relevance for h in found.hits))
        assert found.names == before.names  # the ranking is unchanged
    requests = ("I want to book a flight", "Fly from Boston to Denver on May 3")
    index = ToolIndex(TOOLS, minilm, settings=RetrievalSettings(evidence=unit))
    vague, specific = (index.search(r, 1).relevance for r in requests)
    plain_vague, plain_specific = (plain.search(r, 1).relevance for r in requests)
    # the airports and the date: 0.02 * log(1 + 4) for the values, 0.04 / 0.5 for coverage
    assert (specific - vague) - (plain_specific - plain_vague) == pytest.approx(0.112, abs=0.001)


# Held-out requests that give what their tool needs, and requests about the same topics that
# give nothing (BFCL's live_irrelevance is full of these: "I want to find a train").
SPECIFIC = {
    "search_flights": [
        "flights from Boston to Denver on May 3",
        "fly me from Paris to Rome on June 12",
        "a plane from Lisbon to Oslo on Friday",
        "flight Chicago to Miami departing 2024-07-01",
        "from SFO to JFK on the 14th of August",
        "any flights Madrid to Berlin on 3 March",
        "find flights from Tokyo to Seoul on Monday",
        "Austin to Seattle flight on December 2",
    ],
    "book_hotel": [
        "a hotel room in Vienna from May 2 for 3 nights",
        "book a room in Lisbon checking in Friday for 2 nights",
        "reserve a hotel in Kyoto from 2024-04-10, 5 nights",
        "hotel in Prague, check in June 1, 4 nights",
        "a room in Dublin for 1 night from Saturday",
        "need a hotel in Cairo from March 3 for 7 nights",
        "book the Hilton in Oslo from July 9 for 2 nights",
    ],
    "send_email": [
        "email anna@example.com with subject 'Budget' please",
        "send bob@corp.io a message titled 'Launch moved'",
        "mail Maria the subject 'Invoice 42'",
        "write to ceo@acme.com about 'Q3 numbers'",
        "send an email to Tom, subject 'Dinner at 8'",
        "email John with the subject 'Slides'",
        "send support@shop.com the subject 'Order 1187'",
    ],
    "create_event": [
        "add 'Dentist' to my calendar at 3pm Tuesday",
        "create an event 'Standup' at 9:00 tomorrow",
        "put 'Call with Ana' on the calendar for Friday 4pm",
        "calendar event 'Launch review' on May 5 at 10",
        "schedule 'Yoga' at 7am on Sunday",
        "add an event called 'Budget sync' at 2pm on Monday",
        "new event 'Mom birthday' on 12 June",
        "set 'Team lunch' for Thursday at noon",
    ],
}
VAGUE = [
    "I want to book a flight",
    "can you help me fly somewhere",
    "find me a plane ticket",
    "I need to travel by air",
    "search for flights for me",
    "I'd like to take a flight soon",
    "help me with a flight",
    "I need a hotel",
    "book me a room somewhere",
    "can you find me a hotel",
    "I want to stay at a hotel",
    "help me reserve a room",
    "find accommodation for me",
    "send an email for me",
    "I want to email someone",
    "can you write an email",
    "help me send a message by mail",
    "I need to send a mail",
    "add something to my calendar",
    "create an event for me",
    "I want to schedule something",
    "help me put an event in my calendar",
    "make a calendar entry",
    "can you set up an event",
]
OFF_TOPIC = [
    "tell me a joke",
    "how are you today",
    "what is the meaning of life",
    "explain photosynthesis simply",
    "why is the sky blue",
    "recommend a good book",
    "how do magnets work",
    "what should I cook tonight",
    "is coffee bad for you",
    "how many legs does a spider have",
    "what rhymes with orange",
    "teach me a card trick",
]


def _bfcl_style(served: dict[str, list[str]], unserved: list[str]) -> ToolEvalData:
    queries = [
        ToolQuery(f"{tool}-{i}", text, (tool,), TOOLS)
        for tool, texts in served.items()
        for i, text in enumerate(texts)
    ]
    queries += [ToolQuery(f"none-{i}", text, (), TOOLS) for i, text in enumerate(unserved)]
    return ToolEvalData(tuple(queries), (), "held out")


@pytest.fixture(scope="module")
def fitted_with_evidence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToolFitResult]:
    """A (one-step) fit whose held-out requests fit the evidence correction: ~20 s."""
    train = _bfcl_style(
        {"search_flights": ["fly to Oslo Friday"], "send_email": ["email Ann 'Hi'"]},
        ["what is a hotel"],
    )
    out = tmp_path_factory.mktemp("evidence") / "tool-encoder"
    result = fit_tool_encoder(
        examples_from(train),
        out,
        settings=ToolFitSettings(max_steps=1),
        validation=[_bfcl_style(SPECIFIC, VAGUE[::2] + OFF_TOPIC)],
    )
    return out, result


def test_a_fit_corrects_relevance_by_argument_evidence(
    fitted_with_evidence: tuple[Path, ToolFitResult],
) -> None:
    out, result = fitted_with_evidence
    scores = result.validation
    assert scores is not None
    assert scores.evidence
    assert (scores.requests, scores.no_tool_requests) == (30, 24)
    assert scores.rejected is not None
    assert scores.rejected_by_relevance is not None
    # Relevance rejects the off-topic requests, but MiniLM scores "I want to book a flight" as
    # high as a flight with its airports and date; the (cross-fitted) correction tells them
    # apart.
    assert scores.rejected > scores.rejected_by_relevance + 0.2, scores
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    model = fitted_evidence(out)
    assert model is not None
    assert manifest["evidence"] == model.to_json()
    covered = EVIDENCE_MEASURES.index("covered")
    assert model.weights[covered] > 0  # giving the arguments raises relevance


def test_a_fit_without_enough_no_tool_requests_keeps_relevance_plain(
    tmp_path: Path,
) -> None:
    validation = _bfcl_style(SPECIFIC, VAGUE[:19])
    result = fit_tool_encoder(
        examples_from(_bfcl_style({"send_email": ["email Ann 'Hi'", "mail Bo 'Yo'"]}, [])),
        tmp_path / "enc",
        settings=ToolFitSettings(max_steps=1),
        validation=[validation],
    )
    assert result.validation is not None
    assert not result.validation.evidence
    assert result.validation.rejected_by_relevance is None
    assert fitted_evidence(result.folder) is None
    off = fit_tool_encoder(
        examples_from(_bfcl_style({"send_email": ["email Ann 'Hi'", "mail Bo 'Yo'"]}, [])),
        tmp_path / "off",
        settings=ToolFitSettings(max_steps=1, evidence=False),
        validation=[_bfcl_style(SPECIFIC, VAGUE)],
    )
    assert off.validation is not None
    assert not off.validation.evidence
    assert fitted_evidence(off.folder) is None


@pytest.mark.anyio
async def test_a_switch_retrieves_with_the_fitted_correction(
    fitted_with_evidence: tuple[Path, ToolFitResult], cache_root: Path
) -> None:
    out, _ = fitted_with_evidence
    config = parse_config(
        DEFAULT_SKILLS
        + "tools:\n  servers:\n    - {name: builtin, command: [skillswitch-builtin-tools]}\n"
        + f"  retrieval: {{encoder: '{out}'}}\n"
    )
    async with Switch.from_config(config, cache_dir=cache_root) as switch:
        assert switch.tool_finder is not None
        assert switch.tool_finder.settings.evidence == fitted_evidence(out)


def test_a_malformed_correction_in_the_manifest_is_named(
    fitted_with_evidence: tuple[Path, ToolFitResult], tmp_path: Path
) -> None:
    out, _ = fitted_with_evidence
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["evidence"]["weights"] = [1.0]
    (broken / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"tool-encoder.json: 'evidence' is malformed"):
        fitted_evidence(broken)


def _write_bfcl(folder: Path, name: str, served: dict[str, list[str]], unserved: list[str]) -> Path:
    """A BFCL v4 question file over TOOLS (and its possible_answer file when it has gold)."""
    functions = [
        {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)}
        for t in TOOLS
    ]
    rows, answers = [], []
    for tool, texts in served.items():
        for i, text in enumerate(texts):
            identifier = f"{name}_{tool}_{i}"
            rows.append({"id": identifier, "question": [[{"role": "user", "content": text}]]})
            answers.append({"id": identifier, "ground_truth": [{tool: {}}]})
    for i, text in enumerate(unserved):
        rows.append({"id": f"{name}_none_{i}", "question": [[{"role": "user", "content": text}]]})
    file = folder / f"BFCL_v4_{name}.json"
    file.write_text("".join(json.dumps({**r, "function": functions}) + "\n" for r in rows), "utf-8")
    if answers:
        (folder / "possible_answer").mkdir(exist_ok=True)
        (folder / "possible_answer" / file.name).write_text(
            "".join(json.dumps(a) + "\n" for a in answers), "utf-8"
        )
    return file


def test_eval_tools_applies_the_encoders_correction(
    fitted_with_evidence: tuple[Path, ToolFitResult], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out, result = fitted_with_evidence
    queries = _write_bfcl(tmp_path, "irrelevance", {}, VAGUE[1::2])
    report = tmp_path / "report.json"
    completed = run(
        [
            *("eval", "tools", "--queries", str(queries)),
            *("--encoder", str(out), "--json", str(report)),
        ],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "corrected by argument evidence" in completed.stdout
    scored = json.loads(report.read_text(encoding="utf-8"))
    assert scored["evidence"] is True
    assert scored["threshold"] == pytest.approx(result.threshold, abs=1e-6)
    # vague requests the fit never saw: the correction rejects most of them
    assert scored["rejection"] >= 0.75, scored
