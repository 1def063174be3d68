"""LangChain's own ``ChatOpenAI`` (langchain-openai) pointed at ``skillswitch serve`` on
loopback: invoke, stream, ainvoke and astream with ``model`` = ``skillswitch`` (routed),
``skillswitch/<skill>`` and an expert's name; the route comes back in the
``x-skillswitch-route`` header, which ChatOpenAI hands over in ``response_metadata``."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_openai import ChatOpenAI

from skillswitch.server.api import create_app
from tests.integrations.switches import MATH, TRANSLATE, build_switch
from tests.support.servers import serve

ECHO = f"echo: {TRANSLATE}"


@pytest.fixture(scope="module")
def url(upstream: str, cache_root: Path) -> Iterator[str]:
    """The app's lifespan closes the switch in the server's loop when the server stops."""
    app = create_app(build_switch(upstream, cache_root), mcp=False)
    with serve(app, lifespan="on") as base:
        yield f"{base}/v1"


def chat(url: str, model: str, http_async_client: Any = None) -> ChatOpenAI:
    """``http_async_client``: async tests pass their own, opened in their event loop
    (langchain-openai otherwise shares one per base URL, whose connections would belong to the
    loop of the first test that used it)."""
    return ChatOpenAI(
        model=model,
        base_url=url,
        api_key="sk-unused-on-loopback",  # type: ignore[arg-type]
        max_retries=0,
        include_response_headers=True,
        stream_usage=True,
        http_async_client=http_async_client,
    )


@pytest.fixture
async def http() -> AsyncIterator[Any]:
    async with openai.DefaultAsyncHttpxClient() as client:
        yield client


def route_of(message: BaseMessage) -> dict[str, str]:
    header = message.response_metadata["headers"]["x-skillswitch-route"]
    return dict(part.split("=", 1) for part in header.split(";"))


def test_invoke_is_routed(url: str) -> None:
    reply = chat(url, "skillswitch").invoke(TRANSLATE)
    assert isinstance(reply, AIMessage)
    assert reply.content == ECHO
    assert route_of(reply) == {
        "route": "auto",
        "skill": "translation",
        "experts": "polyglot",
        "aggregator": "pass_through",
    }
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == len(TRANSLATE.split())
    assert reply.usage_metadata["output_tokens"] == len(ECHO.split())


def test_stream_adds_up_to_the_answer(url: str) -> None:
    model = chat(url, "skillswitch")
    chunks = list(model.stream(TRANSLATE))
    assert len([c for c in chunks if c.content]) > 1  # token by token
    whole = functools.reduce(lambda a, b: a + b, chunks)
    assert isinstance(whole, AIMessageChunk)
    assert whole.content == model.invoke(TRANSLATE).content == ECHO
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["output_tokens"] == len(ECHO.split())


def test_a_skill_and_an_expert_are_models(url: str) -> None:
    by_skill = chat(url, "skillswitch/math").invoke(TRANSLATE)
    assert by_skill.content == ECHO
    assert route_of(by_skill)["route"] == "skill"
    assert route_of(by_skill)["experts"] == "calculator"
    by_expert = chat(url, "generalist").invoke(MATH)
    assert by_expert.content == f"echo: {MATH}"
    assert route_of(by_expert)["route"] == "expert"
    assert route_of(by_expert)["experts"] == "generalist"


@pytest.mark.anyio
async def test_ainvoke_and_astream(url: str, http: Any) -> None:
    reply = await chat(url, "skillswitch/translation", http).ainvoke(MATH)
    assert reply.content == f"echo: {MATH}"
    assert route_of(reply)["experts"] == "polyglot"
    chunks = [chunk async for chunk in chat(url, "calculator", http).astream(TRANSLATE)]
    assert "".join(str(c.content) for c in chunks) == ECHO
    assert len([c for c in chunks if c.content]) > 1


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("polyglott", "did you mean 'polyglot'"),
        ("skilswitch", "did you mean 'skillswitch'"),
        ("skillswitch/maths", "did you mean 'skillswitch/math'"),
    ],
)
def test_an_unknown_model_is_not_found_with_a_did_you_mean(url: str, model: str, hint: str) -> None:
    with pytest.raises(openai.NotFoundError, match=hint) as raised:
        chat(url, model).invoke("hello")
    assert raised.value.status_code == 404
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "model_not_found"


@pytest.mark.anyio
async def test_an_unknown_model_fails_the_same_way_async(url: str, http: Any) -> None:
    with pytest.raises(openai.NotFoundError, match="did you mean 'polyglot'"):
        await chat(url, "polyglott", http).ainvoke("hello")
