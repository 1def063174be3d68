from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skillswitch.config import default_config
from skillswitch.exceptions import RequestError
from skillswitch.router import ExemplarClassifier, Router
from skillswitch.router.decision import DECISION_SCHEMA
from skillswitch.router.encoders import Encoder
from skillswitch.router.requests import ELLIPSIS, prepare_text, split_clauses


@pytest.mark.parametrize(
    ("text", "skill"),
    [
        ("what is 250 divided by 8", "math"),
        ("how many kilograms is 150 pounds", "unit_conversion"),
        ("what time is it in Los Angeles", "datetime"),
        ("write a python script that downloads a web page", "coding"),
        ("translate 'good night' into italian", "translation"),
        ("hello there, how are you doing", "smalltalk"),
        ("give me a summary of this report in 3 bullet points", "summarization"),
    ],
)
def test_default_router_picks_the_obvious_skill(
    default_router: Router, text: str, skill: str
) -> None:
    decision = default_router.route(text)
    assert not decision.out_of_scope
    assert decision.skills[0].skill == skill


@pytest.mark.parametrize(
    "text",
    [
        "transfer 500 dollars to my savings account",
        "turn on the bedroom lights",
        "order me a pizza",
    ],
)
def test_default_router_rejects_actions_it_cannot_do(default_router: Router, text: str) -> None:
    decision = default_router.route(text)
    assert decision.out_of_scope
    assert decision.skills == ()
    assert decision.label == "out_of_scope"


def test_compound_requests_get_every_skill(default_router: Router) -> None:
    decision = default_router.route(
        "translate 'thank you' into german and then convert 5 miles to km"
    )
    assert {"translation", "unit_conversion"} <= set(decision.skill_names)
    assert len(decision.skills) <= default_router.top_k


def test_decision_serialises_to_a_stable_json_shape(default_router: Router) -> None:
    data = default_router.route("what is 2+2").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["schema"] == DECISION_SCHEMA
    assert set(data) == {
        "schema",
        "label",
        "skills",
        "candidates",
        "out_of_scope",
        "confidence",
        "threshold",
        "encoder",
        "classifier",
        "timing_ms",
        "truncated",
    }
    assert data["timing_ms"]["total"] >= data["timing_ms"]["encode"] > 0


def test_route_many_matches_route(default_router: Router) -> None:
    texts = ["what is 2+2", "book a flight to rome", "say hi in french and then what is 3*3"]
    one_by_one = [default_router.route(t) for t in texts]
    batched = default_router.route_many(texts)
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.skill_names == b.skill_names
        assert a.out_of_scope == b.out_of_scope
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    assert default_router.route_many([]) == []


@pytest.mark.parametrize(
    ("request_value", "fragment"),
    [
        ("", "empty"),
        ("   \n\t ", "only whitespace"),
        (b"\xff\xfeabc", "not valid UTF-8 (byte 0xff at offset 0)"),
        ("abc\udcff", "not valid UTF-8"),
        (42, "must be text"),
        (None, "must be text"),
    ],
)
def test_bad_requests_get_clear_errors(
    default_router: Router, request_value: object, fragment: str
) -> None:
    with pytest.raises(RequestError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        default_router.route(request_value)  # type: ignore[arg-type]


def test_a_megabyte_request_is_routed_on_its_head_and_tail(default_router: Router) -> None:
    text = "Summarize the following article in three bullet points. " + "lorem ipsum " * 90_000
    assert len(text) > 1_000_000
    decision = default_router.route(text)
    assert decision.truncated
    assert decision.skill_names[0] == "summarization"
    prepared, truncated = prepare_text(text, max_chars=100)
    assert truncated
    assert len(prepared) == 100 + len(ELLIPSIS)


def test_utf8_bytes_are_accepted(default_router: Router) -> None:
    assert default_router.route(b"what is 2+2").skill_names[0] == "math"


def test_split_clauses_only_splits_short_compound_requests() -> None:
    assert split_clauses("translate hi to french and then convert 5 miles to km") == [
        "translate hi to french",
        "convert 5 miles to km",
    ]
    assert split_clauses("what is the exchange rate between dollars and euros") == []
    assert split_clauses("summarize this. " + "It was a long day. " * 30) == []


def test_auto_threshold_comes_from_leave_one_out_calibration(default_router: Router) -> None:
    calibration = default_router.calibration
    assert calibration is not None
    assert calibration.objective == default_config().router.threshold_objective
    assert calibration.in_scope_items == sum(len(s.examples) for s in default_config().skills)
    assert calibration.out_of_scope_items == len(default_config().out_of_scope.examples)
    assert default_router.threshold == calibration.threshold


def test_exemplar_scores_are_top_k_mean_cosines(minilm: Encoder) -> None:
    texts = [
        "what is 2+2",
        "compute 3*3",
        "multiply 4 by 5",
        "translate hi to french",
        "say bye in german",
    ]
    vectors = minilm.encode(texts)
    classifier = ExemplarClassifier(["math", "translation"], vectors, [0, 0, 0, 1, 1], neighbours=2)
    query = minilm.encode(["what is 7 times 8"])
    scores = classifier.scores(query)
    sims = (query @ vectors.T)[0]
    assert scores.skills[0, 0] == pytest.approx(np.sort(sims[:3])[-2:].mean(), abs=1e-6)
    assert scores.skills[0, 1] == pytest.approx(sims[3:].mean(), abs=1e-6)
    assert scores.reject is None
    inside, labels, outside = classifier.leave_one_out()
    # held out: the first example is scored only against the other two math examples
    assert inside.skills[0, 0] == pytest.approx((vectors[0] @ vectors[1:3].T).mean(), abs=1e-6)
    assert list(labels) == [0, 0, 0, 1, 1]
    assert outside is None


def test_router_from_examples_with_fixed_threshold(minilm: Encoder) -> None:
    router = Router.from_examples(
        minilm, {"math": ["what is 2+2"], "greet": ["hello there"]}, threshold=0.99
    )
    assert router.calibration is None
    assert router.route("what is 3+3").out_of_scope  # nothing is that similar


def test_restart_reuses_cached_example_embeddings(tmp_path: Path, minilm: Encoder) -> None:
    from skillswitch.config import parse_config
    from skillswitch.router.encoders import EmbeddingCache

    config = parse_config(
        "skills:\n  - {name: math, description: sums, examples: [what is 2+2, add 3 and 4]}\n"
        "  - {name: greet, description: hello, examples: [hi there]}\n"
    )
    Router.from_config(config, cache_dir=tmp_path)
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    cache.encode(minilm, ["what is 2+2", "add 3 and 4", "hi there"])
    assert (cache.hits, cache.misses) == (3, 0)  # the first start stored every example


def test_calibrating_without_out_of_scope_items_rejects_nothing(minilm: Encoder) -> None:
    router = Router.from_examples(
        minilm, {"math": ["what is 2+2", "add 3 and 4"], "greet": ["hi there", "good morning"]}
    )
    calibration = router.calibrate(["what is 5 times 5", "hello you"], ["math", "greet"])
    assert calibration.objective == "keep-100%"
    assert calibration.out_of_scope_recall is None
    assert not any(d.out_of_scope for d in router.route_many(["what is 9-1", "hey", "zzz qqq"]))


def test_a_clause_skill_survives_the_top_k_cut(minilm: Encoder) -> None:
    examples = {
        "math": ["what is 2+2", "multiply 6 by 7"],
        "arithmetic": ["what is 3+3", "multiply 5 by 8"],
        "translation": ["translate hello into french", "say thanks in german"],
    }
    router = Router.from_examples(minilm, examples, threshold=-1.0, top_k=2, margin=1.0)
    decision = router.route("what is 4+4 and then translate goodbye into spanish")
    assert len(decision.skills) == 2
    assert decision.skills[0].skill in {"math", "arithmetic"}
    assert decision.skills[1].skill == "translation"
