"""skillswitch serve-models: the local backend behind an OpenAI-compatible server on loopback,
driven by the official ``openai`` client (sync, async, streaming) and by plain httpx for errors.

The models are tiny random-weight Llama/Qwen2/BERT folders (tests/conftest.py ``tiny_models``):
their text is gibberish, but greedy decoding is deterministic, so the server's answers can be
compared with the backend's own to the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest

from skillswitch.inference import GenerationParams, GenerationResult, LocalBackend
from skillswitch.inference.scheduler import GenerationHandle, Prompt
from skillswitch.server.models_api import create_models_app
from tests.support.cli import run
from tests.support.servers import serve

USER = [{"role": "user", "content": "What is the capital of France?"}]
ERROR_FIELDS = {"message", "type", "param", "code"}


class RecordingBackend(LocalBackend):
    """The real backend, keeping every handle so that tests can see how a generation ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handles: list[GenerationHandle] = []

    def submit(
        self,
        model: str,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        stream: bool = True,
    ) -> GenerationHandle:
        handle = super().submit(model, prompt, params, stream=stream)
        self.handles.append(handle)
        return handle


@pytest.fixture(scope="module")
def backend(tiny_models: dict[str, Path]) -> Iterator[RecordingBackend]:
    built = RecordingBackend.from_folders(dict(tiny_models), device="cpu")
    assert isinstance(built, RecordingBackend)
    yield built
    built.close()


@pytest.fixture(scope="module")
def url(backend: RecordingBackend) -> Iterator[str]:
    with serve(create_models_app(backend, max_body_bytes=256 * 1024)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as opened:
        yield opened


@pytest.fixture
async def async_client(url: str) -> Any:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as c:
        yield c


def greedy(
    backend: LocalBackend, model: str, prompt: Prompt, max_tokens: int, **params: Any
) -> GenerationResult:
    settings = GenerationParams(max_new_tokens=max_tokens, temperature=0.0, **params)
    return backend.generate_sync(model, prompt, settings, timeout=60)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def assert_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_FIELDS
    for needle in needles:
        assert needle in body["error"]["message"], body["error"]["message"]
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


# --- chat completions ----------------------------------------------------------------------


def test_chat_greedy_answer_equals_its_stream_and_the_backend(
    client: openai.OpenAI, backend: RecordingBackend
) -> None:
    expected = greedy(backend, "llama-a", USER, 12)
    answer = client.chat.completions.create(
        model="llama-a", messages=USER, max_tokens=12, temperature=0
    )
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text
    assert choice.finish_reason == "length" == expected.finish_reason
    assert answer.object == "chat.completion"
    assert answer.model == "llama-a"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    assert answer.usage.completion_tokens == expected.completion_tokens == 12
    assert answer.usage.total_tokens == expected.prompt_tokens + 12

    with client.chat.completions.create(
        model="llama-a",
        messages=USER,
        max_completion_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == expected.text
    assert len([d for d in deltas if d]) > 1  # really streamed, not one block
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == expected.prompt_tokens


def test_chat_accepts_text_parts_and_developer_messages(
    client: openai.OpenAI, backend: RecordingBackend
) -> None:
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "the sea?"}],
        },
    ]
    plain = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is\nthe sea?"},
    ]
    expected = greedy(backend, "qwen-a", plain, 8)
    answer = client.chat.completions.create(
        model="qwen-a", messages=messages, max_tokens=8, temperature=0
    )
    assert answer.choices[0].message.content == expected.text
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == expected.prompt_tokens


def test_a_stop_string_ends_the_text(client: openai.OpenAI, backend: RecordingBackend) -> None:
    full = greedy(backend, "llama-a", USER, 40).text
    # a stop string of plain letters from the middle of the greedy answer
    start = next(
        i
        for i in range(4, len(full) - 3)
        if full[i : i + 3].isascii() and full[i : i + 3].isalpha()
    )
    stop = full[start : start + 3]
    expected = full[: full.find(stop)]
    answer = client.chat.completions.create(
        model="llama-a", messages=USER, max_tokens=40, temperature=0, stop=[stop, "never-seen"]
    )
    assert answer.choices[0].message.content == expected
    assert answer.choices[0].finish_reason == "stop"
    with client.chat.completions.create(
        model="llama-a", messages=USER, max_tokens=40, temperature=0, stop=stop, stream=True
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"


class City(pydantic.BaseModel):
    """What openai's ``.parse`` asks for: a strict json_schema made from this model."""

    name: str = pydantic.Field(max_length=12)
    population: int = pydantic.Field(ge=0, le=999)
    capital: bool


def test_structured_output_is_decoded_in_the_schema(
    client: openai.OpenAI, backend: RecordingBackend
) -> None:
    """A random-weight model's gibberish, yet ``.parse`` gets a City: the answer is decoded in
    the schema's grammar; streamed, the same JSON arrives in pieces."""
    parsed = client.chat.completions.parse(
        model="qwen-a", messages=USER, max_tokens=80, temperature=0, response_format=City
    )
    choice = parsed.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, City)
    schema = City.model_json_schema()
    jsonschema.validate(json.loads(choice.message.content or ""), schema)
    mode = {"type": "json_object"}
    with client.chat.completions.create(
        model="llama-a",
        messages=USER,
        max_tokens=16,
        temperature=0,
        stream=True,
        response_format=mode,  # type: ignore[arg-type]
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    plain = client.chat.completions.create(
        model="llama-a",
        messages=USER,
        max_tokens=16,
        temperature=0,
        response_format=mode,  # type: ignore[arg-type]
    )
    assert text == plain.choices[0].message.content
    assert text.startswith("{")
    assert text != greedy(backend, "llama-a", USER, 16).text  # the grammar changed it


def test_a_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def sample(seed: int, *, stream: bool = False) -> str:
        if stream:
            with client.chat.completions.create(
                model="llama-b",
                messages=USER,
                max_tokens=24,
                temperature=1.0,
                seed=seed,
                stream=True,
            ) as chunks:
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        answer = client.chat.completions.create(
            model="llama-b", messages=USER, max_tokens=24, temperature=1.0, seed=seed
        )
        return answer.choices[0].message.content or ""

    first = sample(1234)
    assert sample(1234) == first
    assert sample(1234, stream=True) == first
    assert sample(99) != first


@pytest.mark.anyio
async def test_async_client_streams_and_answers(
    async_client: openai.AsyncOpenAI, backend: RecordingBackend
) -> None:
    expected = await asyncio.to_thread(greedy, backend, "qwen-a", USER, 10)
    answer = await async_client.chat.completions.create(
        model="qwen-a", messages=USER, max_tokens=10, temperature=0
    )
    assert answer.choices[0].message.content == expected.text
    stream = await async_client.chat.completions.create(
        model="qwen-a", messages=USER, max_tokens=10, temperature=0, stream=True
    )
    async with stream:
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == expected.text


@pytest.mark.anyio
async def test_concurrent_requests_all_answer_and_share_batches(
    async_client: openai.AsyncOpenAI, backend: RecordingBackend
) -> None:
    before = len(backend.handles)
    questions = [f"Question {i}: what is {i} + {i}?" for i in range(8)]
    answers = await asyncio.gather(
        *(
            async_client.chat.completions.create(
                model="llama-a",
                messages=[{"role": "user", "content": q}],
                max_tokens=48,
                temperature=0,
            )
            for q in questions
        )
    )
    assert all(a.choices[0].finish_reason == "length" for a in answers)
    assert all(a.usage is not None and a.usage.completion_tokens == 48 for a in answers)
    handles = backend.handles[before:]
    assert len(handles) == 8
    assert max(h.result_sync(0).batch_size for h in handles) > 1
    assert backend.scheduler.stats.largest_batch > 1


# --- completions -----------------------------------------------------------------------------


def test_completion_equals_its_stream_and_the_backend(
    client: openai.OpenAI, backend: RecordingBackend
) -> None:
    prompt = "The quick brown fox"
    expected = greedy(backend, "llama-b", prompt, 16)
    # no max_tokens: OpenAI's default for completions, 16
    answer = client.completions.create(model="llama-b", prompt=prompt, temperature=0)
    assert answer.object == "text_completion"
    assert answer.choices[0].text == expected.text
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        expected.prompt_tokens,
        16,
    )

    with client.completions.create(
        model="llama-b",
        prompt=[prompt],
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 16

    echoed = client.completions.create(
        model="llama-b", prompt=prompt, max_tokens=16, temperature=0, echo=True
    )
    assert echoed.choices[0].text == prompt + expected.text


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_equal_to_the_backend(
    client: openai.OpenAI, url: str, backend: RecordingBackend
) -> None:
    texts = ["the sea at night", "solve 3x + 5 = 20", "guten Morgen"]
    expected = backend.embed_sync("bert-a", texts)
    # the openai client asks for base64 by default and decodes it
    answer = client.embeddings.create(model="bert-a", input=texts)
    assert [d.index for d in answer.data] == [0, 1, 2]
    assert answer.model == "bert-a"
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    for got, want in zip(answer.data, expected.vectors, strict=True):
        assert len(got.embedding) == len(want) == 64
        assert math.isclose(math.sqrt(sum(v * v for v in got.embedding)), 1.0, rel_tol=1e-5)
        assert got.embedding == pytest.approx(want, abs=1e-6)

    alone = backend.embed_sync("bert-a", ["guten Morgen"]).vectors[0]
    floats = httpx.post(
        f"{url}/v1/embeddings",
        json={"model": "bert-a", "input": "guten Morgen", "encoding_format": "float"},
    ).json()
    assert floats["object"] == "list"
    assert floats["data"][0]["embedding"] == pytest.approx(alone, abs=1e-6)
    raw = httpx.post(
        f"{url}/v1/embeddings",
        json={"model": "bert-a", "input": ["guten Morgen"], "encoding_format": "base64"},
    ).json()["data"][0]["embedding"]
    assert list(struct.unpack("<64f", base64.b64decode(raw))) == pytest.approx(alone, abs=1e-6)


# --- models and health ----------------------------------------------------------------------


def test_models_list_and_health(client: openai.OpenAI, url: str) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"llama-a", "llama-b", "qwen-a", "bert-a"}
    assert all(m.object == "model" and m.owned_by == "skillswitch" for m in models.values())
    kinds = {name: getattr(m, "kind", None) for name, m in models.items()}
    assert kinds == {"llama-a": "chat", "llama-b": "chat", "qwen-a": "chat", "bert-a": "embedding"}
    assert client.models.retrieve("bert-a").id == "bert-a"
    with pytest.raises(openai.NotFoundError, match="did you mean 'bert-a'"):
        client.models.retrieve("bert-b")

    health = httpx.get(f"{url}/healthz").json()
    assert health["status"] == "ok"
    assert health["device"] == "cpu"
    assert health["models"] == 4
    assert isinstance(health["queued"], dict)
    assert {r["name"] for r in health["resident"]} <= set(models)
    assert httpx.get(f"{url}/openapi.json").status_code == 200


# --- errors ---------------------------------------------------------------------------------

LONG_PROMPT = " ".join(f"word{i}" for i in range(2500))  # more tokens than the 2048 positions


CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"


def case(name: str, path: str, body: Any, status: int, param: str | None, *needles: str) -> Any:
    return pytest.param(path, body, status, param, needles, id=name)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "llama-a", "messages": USER, **fields}


ERROR_CASES = [
    case("bad-json", CHAT, b'{"model": "llama-a", "messages": [', 400, None, "not valid JSON"),
    case("empty-body", CHAT, b"", 400, None, "empty"),
    case("deep-json", CHAT, b"[" * 100_000 + b"]" * 100_000, 400, None, "nested too deeply"),
    case("not-utf8", CHAT, b'{"model": "\xff"}', 400, None, "not UTF-8"),
    case("not-an-object", CHAT, [1, 2], 400, None, "JSON array", "object"),
    case("no-model", CHAT, {"messages": USER}, 400, "model", "model", "required"),
    case("unknown-model", CHAT, chat(model="llama-c"), 404, "model", "'llama-c'", "did you mean"),
    case("no-messages", CHAT, chat(messages=[]), 400, "messages", "messages is empty"),
    case(
        "unasked-tool-result",
        CHAT,
        chat(messages=[{"role": "tool", "tool_call_id": "call-1", "content": "4"}]),
        400,
        "messages",
        "answers tool call 'call-1'",
        "did not make",
    ),
    case(
        "function-role",
        CHAT,
        chat(messages=[{"role": "function", "content": "4"}]),
        400,
        "messages[0].role",
        "deprecated",
        "role 'tool'",
    ),
    case(
        "unknown-role",
        CHAT,
        chat(messages=[{"role": "robot", "content": "4"}]),
        400,
        "messages[0].role",
        '"robot"',
        "system, developer, user, assistant",
    ),
    case(
        "content-not-text",
        CHAT,
        chat(messages=[{"role": "user", "content": 5}]),
        400,
        "messages[0].content",
        "content is 5",
    ),
    case(
        "image-part",
        CHAT,
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        400,
        "messages[0].content",
        "'image_url'",
        "text only",
    ),
    case("n-2", CHAT, chat(n=2), 400, "n", "n is 2"),
    case(
        "response-format-type",
        CHAT,
        chat(response_format={"type": "xml"}),
        400,
        "response_format",
        "response_format.type is 'xml'",
    ),
    case(
        "response-format-unenforceable",
        CHAT,
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "rule",
                    "strict": True,
                    "schema": {"type": "object", "if": {"required": ["a"]}},
                },
            }
        ),
        400,
        "response_format",
        "json_schema 'rule' schema cannot be enforced while decoding",
        "strict: false",
    ),
    case(
        "functions",
        CHAT,
        chat(functions=[{"name": "f"}]),
        400,
        "functions",
        "deprecated",
        "send tools",
    ),
    case(
        "tool-choice-unknown",
        CHAT,
        chat(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": {"name": "g"}},
        ),
        400,
        "tool_choice",
        "'g'",
        "not among the tools (f)",
    ),
    case(
        "tool-name",
        CHAT,
        chat(tools=[{"type": "function", "function": {"name": "no spaces"}}]),
        400,
        "tools",
        "tools[0].function.name",
        "'no spaces'",
    ),
    case(
        "chat-to-embedding-model",
        CHAT,
        chat(model="bert-a"),
        400,
        "model",
        "'bert-a' is an embedding model",
    ),
    case("temperature", CHAT, chat(temperature=-1), 400, "temperature", "temperature", "-1"),
    case("max-tokens", CHAT, chat(max_tokens=0), 400, "max_tokens", "max_tokens", "got 0"),
    case("top-p", CHAT, chat(top_p=1.5), 400, "top_p", "top_p", "1.5"),
    case("empty-stop", CHAT, chat(stop=["", "x"]), 400, "stop", '["", "x"]', "non-empty"),
    case("stream-not-bool", CHAT, chat(stream="often"), 400, "stream", '"often"'),
    case(
        "chat-too-long",
        CHAT,
        chat(messages=[{"role": "user", "content": LONG_PROMPT}], max_tokens=1),
        400,
        "messages",
        "takes at most 2048 positions",
    ),
    case(
        "completion-too-long-streamed",
        COMPLETIONS,
        {"model": "llama-a", "prompt": LONG_PROMPT, "stream": True},
        400,
        "prompt",
        "takes at most 2048 positions",
    ),
    case(
        "two-prompts",
        COMPLETIONS,
        {"model": "llama-a", "prompt": ["one", "two"]},
        400,
        "prompt",
        "list of 2 items",
    ),
    case(
        "token-prompt",
        COMPLETIONS,
        {"model": "llama-a", "prompt": [1, 2, 3]},
        400,
        "prompt",
        "token ids",
    ),
    case(
        "unknown-completion-model",
        COMPLETIONS,
        {"model": "qwen-b", "prompt": "x"},
        404,
        "model",
        "'qwen-b'",
        "did you mean 'qwen-a'",
    ),
    case(
        "embed-with-chat-model",
        EMBEDDINGS,
        {"model": "llama-a", "input": "x"},
        400,
        "model",
        "'llama-a' is a chat model",
    ),
    case("no-input", EMBEDDINGS, {"model": "bert-a", "input": []}, 400, "input", "empty list"),
    case(
        "encoding-format",
        EMBEDDINGS,
        {"model": "bert-a", "input": "x", "encoding_format": "hex"},
        400,
        "encoding_format",
        '"hex"',
    ),
    case(
        "dimensions",
        EMBEDDINGS,
        {"model": "bert-a", "input": "x", "dimensions": 32},
        400,
        "dimensions",
        "dimensions is 32",
        "64-dimensional",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "needles"), ERROR_CASES)
def test_client_mistakes_get_openai_shaped_4xx_naming_the_value(
    url: str, path: str, body: Any, status: int, param: str | None, needles: Sequence[str]
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(
        f"{url}{path}", content=content, headers={"Content-Type": "application/json"}, timeout=30
    )
    error = assert_error(response, status, *needles)
    assert error["param"] == param
    if "positions" in error["message"]:
        assert error["code"] == "context_length_exceeded"
    if status == 404:
        assert error["code"] == "model_not_found"


def test_openai_client_raises_its_own_errors_with_our_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="unknown local model 'llama-z'; did you mean"):
        client.chat.completions.create(model="llama-z", messages=USER)
    with pytest.raises(openai.BadRequestError, match="n is 3"):
        client.chat.completions.create(model="llama-a", messages=USER, n=3)
    with pytest.raises(openai.BadRequestError, match="takes at most 2048 positions"):
        client.chat.completions.create(
            model="llama-a", messages=[{"role": "user", "content": LONG_PROMPT}], stream=True
        )


def test_unknown_fields_are_accepted_and_logged(
    url: str, backend: RecordingBackend, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "model": "llama-a",
        "messages": [{"role": "user", "content": "hi", "name": "ann"}],
        "max_tokens": 2,
        "temperature": 0,
        "logit_bias": {"5": 10},
        "presence_penalty": 0.5,
        "x\nY": 1,  # names are the client's text: neither may break the header or the log
        "名前": 2,
    }
    with caplog.at_level(logging.INFO, logger="skillswitch.server.models_api"):
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    ignored = "logit_bias, presence_penalty, x?Y, ??, messages[0].name"
    assert response.headers["x-skillswitch-ignored-fields"] == ignored
    assert any(ignored in record.getMessage() for record in caplog.records)


def test_bodies_over_the_limit_get_413(url: str) -> None:
    big = {"model": "bert-a", "input": ["x" * 1000] * 300}
    assert_error(httpx.post(f"{url}/v1/embeddings", json=big), 413, "at most 262144 bytes")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"model": "bert-a", "input": ["'
        for _ in range(300):
            yield b"x" * 1000
        yield b'"]}'

    assert_error(httpx.post(f"{url}/v1/embeddings", content=chunked()), 413, "at most 262144 bytes")


def test_an_api_key_is_required_when_set(backend: RecordingBackend) -> None:
    with serve(create_models_app(backend, api_key="s3cret")) as base:
        with (
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0) as wrong,
            pytest.raises(openai.AuthenticationError, match="not valid"),
        ):
            wrong.models.list()
        error = assert_error(httpx.get(f"{base}/v1/models"), 401, "Authorization: Bearer")
        assert error["code"] == "invalid_api_key"
        assert "s3cret" not in json.dumps(error)
        with openai.OpenAI(base_url=f"{base}/v1", api_key="s3cret", max_retries=0) as right:
            assert len(right.models.list().data) == 4
        assert httpx.get(f"{base}/healthz").status_code == 200  # probes need no key


def test_requests_beyond_max_concurrency_get_429(backend: RecordingBackend) -> None:
    with serve(create_models_app(backend, max_concurrency=1)) as base:
        body = {
            "model": "llama-a",
            "prompt": "hi",
            "max_tokens": 2000,
            "temperature": 0,
            "stream": True,
        }
        with httpx.Client(base_url=base, timeout=30) as http:
            with http.stream("POST", "/v1/completions", json=body) as streaming:
                assert streaming.status_code == 200
                lines = streaming.iter_lines()  # kept: dropping it would close the response
                assert next(lines).startswith("data: ")  # the stream is in flight
                refused = http.get("/v1/models")
                assert_error(refused, 429, "max_concurrency 1")
                assert refused.headers["retry-after"] == "1"
            # the client closed the stream: the server takes requests again once it notices
            wait_for(lambda: http.get("/v1/models").status_code == 200)


def test_a_model_that_fails_to_load_is_a_503_naming_it(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_models["qwen-a"], folder)
    (folder / "tokenizer.json").write_text("{", encoding="utf-8")  # registers, cannot load
    broken = LocalBackend.from_folders({"broken": folder}, device="cpu")
    try:
        with serve(create_models_app(broken)) as base:
            for path, body in [
                ("/v1/chat/completions", {"model": "broken", "messages": USER}),
                ("/v1/completions", {"model": "broken", "prompt": "hi", "stream": True}),
            ]:
                response = httpx.post(f"{base}{path}", json=body, timeout=30)
                error = assert_error(response, 503, "model 'broken' cannot be served", str(folder))
                assert error["code"] == "model_unavailable"
                assert error["type"] == "server_error"
    finally:
        broken.close()


# --- cancellation ---------------------------------------------------------------------------


def test_closing_a_stream_early_cancels_its_generation(
    client: openai.OpenAI, backend: RecordingBackend
) -> None:
    before = len(backend.handles)
    with client.completions.create(
        model="llama-a", prompt="Write a poem", max_tokens=2000, temperature=0, stream=True
    ) as stream:
        first = [next(stream) for _ in range(3)]
    assert all(chunk.choices for chunk in first)
    handle = backend.handles[before]
    result = handle.result_sync(timeout=30)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 2000


def test_a_client_that_gives_up_on_an_answer_cancels_its_generation(
    url: str, backend: RecordingBackend
) -> None:
    before = len(backend.handles)
    body = {"model": "llama-a", "prompt": "Write a poem", "max_tokens": 2000, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/completions", json=body, timeout=httpx.Timeout(30, read=0.3))
    wait_for(lambda: len(backend.handles) > before)
    result = backend.handles[before].result_sync(timeout=30)
    assert result.finish_reason == "cancelled"


# --- the command line -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_cli_serves_a_model_folder_until_terminated(
    tiny_models: dict[str, Path], cli_env: dict[str, str]
) -> None:
    port = free_port()
    command = Path(sys.executable).parent / "skillswitch"
    process = subprocess.Popen(
        [
            str(command),
            "serve-models",
            "--model",
            f"a={tiny_models['qwen-a']}",
            "--port",
            str(port),
        ],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, process.communicate()[1]
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60)
        with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as cli_client:
            answer = cli_client.chat.completions.create(
                model="a", messages=USER, max_tokens=4, temperature=0
            )
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 4
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "serving a (chat)" in stderr


def test_cli_refuses_a_public_host_without_an_api_key(
    tiny_models: dict[str, Path], cli_env: dict[str, str]
) -> None:
    completed = run(
        ["serve-models", "--host", "0.0.0.0", "--model", f"a={tiny_models['qwen-a']}"], cli_env
    )
    assert completed.returncode == 2
    assert "'0.0.0.0' is not a loopback address" in completed.stderr
    assert "--api-key-env" in completed.stderr
