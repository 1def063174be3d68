"""``kind: local`` experts: configured, routed and answered by the in-process backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import openai
import pytest

from skillswitch import Switch
from skillswitch.agents.messages import TextDelta
from skillswitch.agents.response_format import ResponseFormat
from skillswitch.config import parse_config
from skillswitch.exceptions import ConfigError, ResponseFormatError
from skillswitch.inference import GenerationParams, GenerationResult, LocalBackend
from skillswitch.inference.grammar import json_grammar
from skillswitch.server.api import create_app
from skillswitch.trace import Answer
from tests.support.configs import DEFAULT_SKILLS
from tests.support.servers import serve

pytestmark = pytest.mark.anyio


def local_config(tiny_models: dict[str, Path]) -> str:
    return (
        DEFAULT_SKILLS
        + f"""
experts:
  - name: poet
    kind: local
    model: tiny-llama
    sampling: {{max_tokens: 12}}
    prices: {{input_per_million: 1.0, output_per_million: 2.0}}
inference:
  device: cpu
  memory: {{device_gb: 1}}
  scheduler: {{max_batch_size: 8}}
  models:
    - {{name: tiny-llama, path: {tiny_models["llama-a"]}}}
"""
    )


@pytest.fixture
async def switch(tiny_models: dict[str, Path], cache_root: Path) -> AsyncIterator[Switch]:
    config = parse_config(local_config(tiny_models))
    async with Switch.from_config(config, cache_dir=cache_root) as built:
        yield built


async def test_a_local_expert_answers_as_its_model_does(
    switch: Switch, tiny_models: dict[str, Path]
) -> None:
    question = "Write a short poem about the sea"
    answer = await switch.run(question)
    reference = LocalBackend.from_folders({"m": tiny_models["llama-a"]}, device="cpu")
    try:
        expected = reference.generate_sync(
            "m", [{"role": "user", "content": question}], GenerationParams(max_new_tokens=12)
        )
    finally:
        reference.close()
    assert answer.text == expected.text
    assert answer.trace.dispatch is not None
    (result,) = answer.trace.dispatch.results
    assert result.expert == "poet"
    assert result.reply is not None
    usage = result.reply.usage
    assert usage.completion_tokens == expected.completion_tokens
    assert usage.prompt_tokens == expected.prompt_tokens
    assert usage.cost == pytest.approx(
        (expected.prompt_tokens * 1.0 + expected.completion_tokens * 2.0) / 1e6
    )


async def test_a_request_s_sampling_goes_over_the_expert_s(
    switch: Switch, tiny_models: dict[str, Path]
) -> None:
    """The caller's max_tokens, temperature and seed replace the config's max_tokens 12 and
    greedy decoding: the answer is the seeded sample the backend draws for them."""
    question = "Write a short poem about the sea"
    sampling = {"max_tokens": 5, "temperature": 0.8, "seed": 3}
    answer = await switch.run(question, sampling=sampling)
    reference = LocalBackend.from_folders({"m": tiny_models["llama-a"]}, device="cpu")
    try:
        messages = [{"role": "user", "content": question}]
        sampled = reference.generate_sync(
            "m", messages, GenerationParams(max_new_tokens=5, temperature=0.8, seed=3)
        )
        greedy = reference.generate_sync("m", messages, GenerationParams(max_new_tokens=5))
    finally:
        reference.close()
    assert answer.text == sampled.text
    assert sampled.token_ids != greedy.token_ids  # the settings were not a no-op
    assert answer.trace.usage.completion_tokens == 5
    assert answer.finish_reason == "length"


CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "population": {"type": "integer", "minimum": 0, "maximum": 999},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}


def _reference(
    tiny_models: dict[str, Path], asked: ResponseFormat, question: str, max_tokens: int
) -> GenerationResult:
    """What the model writes when told the form (the instruction as a system message) and held
    to it (the grammar), through a backend of its own."""
    reference = LocalBackend.from_folders({"m": tiny_models["llama-a"]}, device="cpu")
    told = [
        {"role": "system", "content": asked.instruction()},
        {"role": "user", "content": question},
    ]
    grammar = json_grammar(asked.schema, strict=False, label=asked.label)
    try:
        return reference.generate_sync(
            "m", told, GenerationParams(max_new_tokens=max_tokens, grammar=grammar)
        )
    finally:
        reference.close()


async def test_a_local_model_is_held_to_the_schema(
    switch: Switch, tiny_models: dict[str, Path]
) -> None:
    """A random-weight model writes gibberish, yet the answer is JSON that follows the schema:
    the expert decodes in the schema's grammar (and is told the form in words), so the switch
    has nothing to restate."""
    question = "What is the capital of France?"
    asked = ResponseFormat("json_schema", CITY, name="city")
    answer = await switch.run(
        question, sampling={"response_format": asked.to_openai(), "max_tokens": 60}
    )
    jsonschema.validate(json.loads(answer.text), CITY)
    assert answer.trace.aggregation is None or answer.trace.aggregation.mode != "formatted"
    expected = _reference(tiny_models, asked, question, 60)
    assert expected.finish_reason == "stop"
    assert answer.text == expected.text


async def test_a_local_answer_cut_short_of_the_form_is_an_error_with_its_trace(
    switch: Switch, tiny_models: dict[str, Path]
) -> None:
    """The expert's own 12-token budget ends the object before it closes: the switch finds the
    answer not in the form and, with no aggregator to restate it, says so, carrying the reply."""
    question = "Write a short poem about the sea"
    asked = ResponseFormat("json_object")
    with pytest.raises(ResponseFormatError, match="the answer from poet is not in the form") as e:
        await switch.run(question, sampling={"response_format": asked.to_openai()})
    expected = _reference(tiny_models, asked, question, 12)
    assert expected.finish_reason == "length"
    (reply,) = e.value.trace.dispatch.replies
    assert reply.text == expected.text
    assert reply.text.startswith("{")


def test_a_prompt_over_the_context_is_the_callers_400_and_spares_the_expert(
    tiny_models: dict[str, Path], cache_root: Path
) -> None:
    """More tokens than the model has positions: the client's mistake (400, naming the limit),
    not an upstream failure (502), and the expert is not cut off for the requests after it."""
    built = Switch.from_config(parse_config(local_config(tiny_models)), cache_dir=cache_root)
    too_long = " ".join(f"word{i}" for i in range(2500))  # the tiny models have 2048 positions
    with (
        serve(create_app(built), lifespan="on") as base,
        openai.OpenAI(base_url=f"{base}/v1", api_key="-", max_retries=0) as client,
    ):
        for _ in range(6):  # more than the breaker's 5 failures in a row
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(
                    model="poet", messages=[{"role": "user", "content": too_long}]
                )
            error = caught.value.body
            assert isinstance(error, dict)
            assert (error["code"], error["param"]) == ("request_refused", "messages")
            assert "takes at most 2048 positions" in error["message"]
        answered = client.chat.completions.create(
            model="poet", messages=[{"role": "user", "content": "Write a short poem"}]
        )
        assert answered.choices[0].message.content


async def test_a_streamed_local_answer_adds_up(switch: Switch) -> None:
    deltas: list[str] = []
    final: Answer | None = None
    async for event in switch.stream("Translate good morning to German"):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            final = event
    assert final is not None
    assert "".join(deltas) == final.text


def test_an_unknown_local_model_is_a_config_error_with_a_suggestion(
    tiny_models: dict[str, Path],
) -> None:
    text = local_config(tiny_models).replace("model: tiny-llama", "model: tiny-lama")
    with pytest.raises(
        ConfigError, match="unknown local model 'tiny-lama'; did you mean 'tiny-llama'"
    ):
        parse_config(text)


def test_relative_model_paths_are_read_from_the_config_folder(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from skillswitch.config import load_config

    folder = tiny_models["llama-a"]
    config_file = folder.parent / "skillswitch.yaml"
    config_file.write_text(
        local_config(tiny_models).replace(str(folder), folder.name), encoding="utf-8"
    )
    loaded = load_config(config_file)
    assert Path(loaded.inference.models[0].path) == folder
