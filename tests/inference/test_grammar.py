"""Constrained decoding (``GenerationParams.grammar``) on real tiny models through the backend.

Random-weight models write gibberish, so any JSON they produce is the grammar's doing: the
tests check that the answer parses and follows the schema, that rows without a grammar in the
same batch decode exactly as they would alone, and that the static-cache path gives the same
tokens as the dynamic one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from skillswitch.exceptions import GrammarError
from skillswitch.inference import GenerationParams, GenerationResult, LocalBackend
from skillswitch.inference.grammar import json_grammar
from tests.support.local_backends import dynamic_and_static

pytestmark = pytest.mark.anyio

MODELS = ("llama-a", "qwen-a")
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
OTHERS = [
    [{"role": "user", "content": "Write a short poem about the sea, the wind and the sky."}],
    [{"role": "user", "content": "hi"}],
]
# Bounded fields: a random model's string or number could otherwise run past any token budget.
CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "population": {"type": "integer", "minimum": 0, "maximum": 999},
        "capital": {"type": "boolean"},
        "continent": {"enum": ["Europe", "Asia", "Africa"]},
    },
    "required": ["city", "population", "capital", "continent"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def backends(tiny_models: dict[str, Path]) -> Iterator[dict[bool, LocalBackend]]:
    with dynamic_and_static({name: tiny_models[name] for name in MODELS}) as made:
        yield made


async def _together(
    backend: LocalBackend, model: str, work: list[tuple[Any, GenerationParams]]
) -> list[GenerationResult]:
    handles = [backend.submit(model, prompt, params) for prompt, params in work]
    return [await handle.result() for handle in handles]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("temperature", [0.0, 0.9], ids=["greedy", "sampled"])
async def test_the_answer_follows_the_schema(
    backends: dict[bool, LocalBackend], model: str, temperature: float
) -> None:
    params = GenerationParams(
        max_new_tokens=80, temperature=temperature, grammar=json_grammar(CITY)
    )
    results = await _together(
        backends[False],
        model,
        [(QUESTION, dataclasses.replace(params, seed=seed)) for seed in range(4)],
    )
    for result in results:
        assert result.finish_reason == "stop", result.text
        jsonschema.validate(json.loads(result.text), CITY)
        # The row ended when the object closed: the last token completes the JSON.
        assert result.text.endswith("}")
    if temperature:
        assert len({r.text for r in results}) > 1, "the seeds were not used"


@pytest.mark.parametrize("model", MODELS)
async def test_rows_without_a_grammar_decode_as_they_would_alone(
    backends: dict[bool, LocalBackend], model: str
) -> None:
    backend = backends[False]
    held = GenerationParams(max_new_tokens=60, grammar=json_grammar(CITY))
    free = GenerationParams(max_new_tokens=24)
    mixed = await _together(
        backend, model, [(OTHERS[0], free), (QUESTION, held), (OTHERS[1], free)]
    )
    assert max(r.batch_size for r in mixed) > 1, "the requests did not share a batch"
    alone = [await backend.generate(model, prompt, free) for prompt in OTHERS]
    assert [mixed[0].token_ids, mixed[2].token_ids] == [r.token_ids for r in alone]
    held_alone = await backend.generate(model, QUESTION, held)
    assert mixed[1].token_ids == held_alone.token_ids
    unheld = await backend.generate(model, QUESTION, dataclasses.replace(held, grammar=None))
    assert held_alone.token_ids != unheld.token_ids  # the grammar changed the answer


@pytest.mark.parametrize("model", MODELS)
async def test_a_static_batch_gives_the_dynamic_paths_tokens(
    backends: dict[bool, LocalBackend], model: str
) -> None:
    work = [
        (QUESTION, GenerationParams(max_new_tokens=60, grammar=json_grammar(CITY))),
        (OTHERS[0], GenerationParams(max_new_tokens=20, temperature=0.8, seed=3)),
        (QUESTION, GenerationParams(max_new_tokens=16, grammar=json_grammar())),
        (
            OTHERS[1],
            GenerationParams(
                max_new_tokens=30, temperature=0.9, seed=5, grammar=json_grammar(CITY)
            ),
        ),
    ]
    dynamic = await _together(backends[False], model, work)
    static = await _together(backends[True], model, work)
    assert [r.token_ids for r in static] == [r.token_ids for r in dynamic]
    assert [r.finish_reason for r in static] == [r.finish_reason for r in dynamic]


async def test_a_streamed_answer_is_the_json_in_pieces(
    backends: dict[bool, LocalBackend],
) -> None:
    params = GenerationParams(max_new_tokens=80, grammar=json_grammar(CITY))
    handle = backends[False].submit("qwen-a", QUESTION, params)
    chunks = [chunk async for chunk in handle.stream()]
    result = await handle.result()
    assert len(chunks) > 3
    assert "".join(chunks) == result.text
    jsonschema.validate(json.loads(result.text), CITY)


async def test_a_budget_too_small_for_the_object_ends_with_length(
    backends: dict[bool, LocalBackend],
) -> None:
    """As OpenAI's do: finish_reason length and the JSON so far, which the caller must not take
    for a whole answer."""
    params = GenerationParams(max_new_tokens=5, grammar=json_grammar(CITY))
    result = await backends[False].generate("llama-a", QUESTION, params)
    assert result.finish_reason == "length"
    assert len(result.token_ids) == 5
    assert result.text.startswith('{"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.text)


async def test_a_root_that_may_be_null_is_still_one_object(
    backends: dict[bool, LocalBackend],
) -> None:
    schema = {**CITY, "type": ["object", "null"]}
    params = GenerationParams(max_new_tokens=80, grammar=json_grammar(schema))
    results = await _together(
        backends[False],
        "qwen-a",
        [(QUESTION, dataclasses.replace(params, temperature=1.0, seed=s)) for s in range(6)],
    )
    for result in results:
        assert isinstance(json.loads(result.text), dict), result.text


def test_any_object_when_no_schema_is_given() -> None:
    assert json_grammar().label == "json_object"
    assert json_grammar({"properties": {"a": {"type": "integer"}}}, label="json_schema 'a'").label


@pytest.mark.parametrize(
    ("schema", "strict", "needles"),
    [
        ({"type": "object", "properties": {"a": {"type": "strnig"}}}, True, ["strnig"]),
        (
            {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}},
            True,
            ["cannot be enforced while decoding", '"if"', "strict: false"],
        ),
    ],
    ids=["invalid-type", "unimplemented-keyword"],
)
def test_a_schema_that_cannot_be_enforced_is_a_clear_error(
    schema: dict[str, Any], strict: bool, needles: list[str]
) -> None:
    with pytest.raises(GrammarError) as caught:
        json_grammar(schema, strict=strict, label="json_schema 'rule'")
    message = str(caught.value)
    assert "json_schema 'rule'" in message
    for needle in needles:
        assert needle in message


async def test_keywords_the_engine_cannot_enforce_are_ignored_when_not_strict(
    backends: dict[bool, LocalBackend],
) -> None:
    schema = {**CITY, "if": {"required": ["city"]}, "then": {"required": ["capital"]}}
    params = GenerationParams(max_new_tokens=80, grammar=json_grammar(schema, strict=False))
    result = await backends[False].generate("llama-a", QUESTION, params)
    assert result.finish_reason == "stop"
    jsonschema.validate(json.loads(result.text), schema)


def test_a_matcher_in_a_dead_end_allows_only_the_end(tiny_models: dict[str, Path]) -> None:
    """What the loop relies on: a token the grammar refused leaves the matcher failed, and a
    failed matcher's mask still allows something (the end of text), never nothing."""
    import torch

    from skillswitch.inference.folders import inspect_folder
    from skillswitch.inference.grammar import mask_disallowed, start_matcher
    from skillswitch.inference.loading import load_model

    loaded = load_model("m", inspect_folder(tiny_models["llama-a"]), "cpu", "float32")
    matcher = start_matcher(loaded, json_grammar())
    not_a_brace = loaded.tokenizer.convert_tokens_to_ids("a")
    assert not matcher.accept(not_a_brace)
    assert matcher.failed
    logits = torch.zeros(2, loaded.model.config.vocab_size)
    mask_disallowed(logits, [1], [matcher])
    allowed = set(torch.isfinite(logits[1]).nonzero().flatten().tolist())
    assert allowed == set(loaded.eos_token_ids)
    assert bool(torch.isfinite(logits[0]).all())  # the row without a grammar is untouched
