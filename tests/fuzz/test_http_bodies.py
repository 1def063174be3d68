"""Raw bodies the spec cannot describe, sent to the endpoints that parse their own: bytes that are
not JSON or not UTF-8, JSON nested deeply, numbers too long or too large for Python, valid
requests with one field replaced by a value of any type. Every answer is a 2xx or a clear
OpenAI-shaped 4xx, never a 5xx or a hang."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.served import AUTH, MODELS, assert_openai_error, post

ENDPOINTS = ["/v1/chat/completions", "/v1/route"]

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Request texts, lone surrogates among them (JSON escapes them; they are not text).
TEXTS = st.one_of(
    st.text(min_size=1, max_size=50),
    st.text(st.characters(exclude_categories=()), min_size=1, max_size=20),
    st.tuples(st.text(max_size=10), st.sampled_from("\ud800\udbff\udc00\udfff")).map("".join),
)
PINNED_SURROGATE = (
    b'{"model": "generalist", "messages": [{"role": "user", "content": "hi \\ud800"}]}'
)

# Texts that broke or could break a JSON body parser.
SPECIAL = [
    b"",
    b" ",
    b"null",
    b"[]",
    b'"text"',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b'{"model": ' + b"1" * 5000 + b', "messages": []}',  # over Python's int digit limit
    b'{"model": "skillswitch", "n": ' + b"9" * 5000 + b', "messages": []}',
    b'{"model": "skillswitch", "n": 1e999999, "messages": []}',
    b'{"model": "skillswitch", "n": NaN, "messages": []}',
    b'{"model": "skillswitch", "messages": [{"role": "user", "content": "\\ud800"}]}',
    PINNED_SURROGATE,  # a 502: the openai client could not encode it for the expert
    b'{"model": "generalist", "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}',
    b'{"model": "generalist", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}',
    b'{"model": "skillswitch", "model": 7, "messages": [{"role": "user", "content": "hi"}]}',
    b'\xef\xbb\xbf{"model": "skillswitch", "messages": [{"role": "user", "content": "hi"}]}',
    '{"model": "skillswitch"}'.encode("utf-16"),
    b'{"input": "\xff\xfe"}',
    b'{"input": ' + b"1" * 5000 + b"}",
]


def valid_body(path: str, text: str, model: str) -> dict[str, Any]:
    if path == "/v1/route":
        return {"input": text}
    return {"model": model, "messages": [{"role": "user", "content": text}]}


@st.composite
def mutated(draw: st.DrawFn, path: str) -> bytes:
    """A valid request with one value, anywhere in it, replaced by a value of any type."""
    body = valid_body(path, draw(TEXTS), draw(st.sampled_from(MODELS)))
    body["stream"] = draw(st.booleans())
    spots: list[tuple[Any, Any]] = [(body, key) for key in body]
    if "messages" in body:
        message = body["messages"][0]
        spots += [(body["messages"], 0)] + [(message, key) for key in message]
    container, key = draw(st.sampled_from(spots))
    container[key] = draw(JSON_VALUES)
    if draw(st.booleans()):  # and a field that may or may not be known
        name = draw(st.sampled_from(["n", "tools", "tool_choice", "stream_options", "x", "input"]))
        body[name] = draw(JSON_VALUES)
    return json.dumps(body).encode()


BODIES = st.one_of(
    st.binary(max_size=500),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@pytest.fixture(scope="module")
def client(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served) as opened:
        yield opened


def check(client: httpx.Client, path: str, content: bytes, statuses: Counter[int]) -> None:
    response = post(client, path, content)
    statuses[response.status_code] += 1
    if response.status_code >= 400:
        assert_openai_error(response.status_code, response.content)
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-500:]
    else:
        assert isinstance(response.json(), dict)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("content", SPECIAL, ids=range(len(SPECIAL)))
def test_special_bodies_get_clear_answers(client: httpx.Client, path: str, content: bytes) -> None:
    check(client, path, content, Counter())


@pytest.mark.parametrize("path", ENDPOINTS)
def test_arbitrary_and_mutated_bodies_get_clear_answers(client: httpx.Client, path: str) -> None:
    statuses: Counter[int] = Counter()

    @given(content=st.one_of(BODIES, mutated(path)))
    @example(content=json.dumps(valid_body(path, "hello", "skillswitch")).encode())
    @fuzz_settings(examples=100, fuzz_examples=3000)
    def answers(content: bytes) -> None:
        check(client, path, content, statuses)

    answers()
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    print(f"\nraw bodies POST {path}: {statuses.total()} requests ({shown})")


def test_integers_too_long_for_python_are_a_400(client: httpx.Client) -> None:
    body = b'{"model": "skillswitch", "n": ' + b"9" * 5000 + b', "messages": []}'
    response = post(client, "/v1/chat/completions", body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message == (
        "the request body holds an integer of more than 4300 digits; send long numbers as strings"
    )


def test_lone_surrogates_are_the_clients_mistake(client: httpx.Client) -> None:
    response = post(client, "/v1/chat/completions", PINNED_SURROGATE)
    assert response.status_code == 400, response.text
    assert "lone surrogate" in response.json()["error"]["message"]
    pair = valid_body("/v1/chat/completions", "\U0001f600", "generalist")
    answered = post(client, "/v1/chat/completions", json.dumps(pair).encode())  # escaped pair
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == "echo: \U0001f600"


def test_an_authorised_request_still_works_after_the_fuzzing(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json=valid_body("/v1/chat/completions", "still there?", "generalist"),
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "echo: still there?"
