"""Tool calling through ``skillswitch serve-models``, driven by the real ``openai`` client.

The tiny models have random weights, so they never choose to call a tool on their own; what is
checked is what does not depend on the model: ``tool_choice: required`` (or a named function)
makes every answer a call of a declared tool with arguments its schema accepts, whatever the
model; the tools and the conversation's calls and results reach the chat template; ``auto``
leaves a text answer as it would be without the grammar; a model whose template cannot show
tools gets a 400 naming the fix. Each holds for the three formats read (Hermes: ``qwen-a`` and
``llama-a``; Llama 3's JSON; Mistral's ``[TOOL_CALLS]``), whose templates check what they are
given as the real ones do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

pytest.importorskip("torch")
pytest.importorskip("llguidance")

from llguidance import LLMatcher

from skillswitch.inference import GenerationParams, LocalBackend, OutputGrammar
from skillswitch.inference.requests import Conversation
from skillswitch.server.models_api import create_models_app
from tests.support.servers import serve

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
CONVERT = {
    "type": "object",
    "properties": {"celsius": {"type": "number"}, "exact": {"type": "boolean"}},
    "required": ["celsius", "exact"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "weather", "description": "A forecast.", "parameters": WEATHER},
    },
    {
        "type": "function",
        "function": {"name": "to_fahrenheit", "description": "Convert.", "parameters": CONVERT},
    },
]
SCHEMAS = {"weather": WEATHER, "to_fahrenheit": CONVERT}
USER: list[Any] = [{"role": "user", "content": "What will the weather be in Oslo?"}]
PLAIN_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


FORMATS = ["qwen-a", "llama3-tools", "mistral-tools", "mistral-v11-tools"]
"""A model of each format."""


@pytest.fixture(scope="module")
def backend(
    tiny_models: dict[str, Path],
    tool_format_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    plain = tmp_path_factory.mktemp("plain") / "qwen-plain"
    shutil.copytree(tiny_models["qwen-a"], plain)
    (plain / "chat_template.jinja").write_text(PLAIN_CHATML)
    folders = {
        "qwen-a": tiny_models["qwen-a"],
        "llama-a": tiny_models["llama-a"],
        "plain": plain,
        **tool_format_models,
    }
    built = LocalBackend.from_folders(folders, device="cpu")
    yield built
    built.close()


@pytest.fixture(scope="module")
def url(backend: LocalBackend) -> Iterator[str]:
    with serve(create_models_app(backend)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as made:
        yield made


def check_call(call: Any) -> dict[str, Any]:
    assert call.type == "function"
    assert call.id.startswith("call-")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return dict(arguments)


@pytest.mark.parametrize("model", ["qwen-a", "llama-a", *FORMATS[1:]])
def test_required_tool_choice_always_gets_a_valid_call(client: openai.OpenAI, model: str) -> None:
    names = set()
    for seed in range(6):
        completion = client.chat.completions.create(
            model=model,
            messages=USER,
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=False,
            temperature=1.0,
            seed=seed,
            max_tokens=120,
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls or []
        assert len(calls) == 1
        check_call(calls[0])
        names.add(calls[0].function.name)  # type: ignore[union-attr]
    assert names <= set(SCHEMAS)


def test_a_named_function_is_the_one_called(client: openai.OpenAI) -> None:
    for seed in range(3):
        completion = client.chat.completions.create(
            model="qwen-a",
            messages=USER,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "to_fahrenheit"}},
            temperature=1.0,
            seed=seed,
            max_tokens=200,
        )
        calls = completion.choices[0].message.tool_calls or []
        assert calls, completion
        assert {call.function.name for call in calls} == {"to_fahrenheit"}  # type: ignore[union-attr]
        for call in calls:
            check_call(call)


@pytest.mark.parametrize("model", FORMATS)
def test_a_streamed_call_arrives_whole_with_its_index(client: openai.OpenAI, model: str) -> None:
    options: dict[str, Any] = {
        "model": model,
        "messages": USER,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "temperature": 0,
        "max_tokens": 120,
    }
    whole = client.chat.completions.create(**options).choices[0].message.tool_calls or []
    with client.chat.completions.create(**options, stream=True) as stream:
        chunks = [chunk for chunk in stream if chunk.choices]
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    deltas = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert content == ""  # no piece of the call leaks out as text
    assert len(deltas) == 1
    assert deltas[0].index == 0
    assert deltas[0].function.name == whole[0].function.name  # type: ignore[union-attr]
    assert deltas[0].function.arguments == whole[0].function.arguments  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", ["qwen-a", "llama-a", *FORMATS[1:]])
def test_auto_leaves_a_text_answer_as_it_would_be(
    client: openai.OpenAI, backend: LocalBackend, model: str
) -> None:
    """The grammar of ``auto`` only holds calls: a model that answers in text, as these do,
    gets the text it would get decoding freely, streamed or not. (Freely as in any Unicode
    text: a grammar reads text as characters, and these random models often write bytes that
    are not UTF-8.)"""
    options: dict[str, Any] = {"messages": USER, "tools": TOOLS, "temperature": 0}
    completion = client.chat.completions.create(model=model, max_tokens=24, **options)
    choice = completion.choices[0]
    any_text = OutputGrammar(LLMatcher.grammar_from_lark("start: /(.|\\n)*/"), "any text")
    free = backend.generate_sync(
        model,
        Conversation(USER, tools=TOOLS),
        GenerationParams(max_new_tokens=24, grammar=any_text),
    )
    assert choice.message.tool_calls is None
    assert choice.message.content == free.text
    assert choice.finish_reason == free.finish_reason
    with client.chat.completions.create(
        model=model, max_tokens=24, stream=True, **options
    ) as stream:
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == free.text


@pytest.mark.parametrize("model", FORMATS)
def test_tools_and_a_conversation_s_calls_and_results_reach_the_template(
    client: openai.OpenAI, model: str
) -> None:
    def prompt_tokens(messages: list[Any], **options: Any) -> int:
        completion = client.chat.completions.create(
            model=model, messages=messages, max_tokens=1, temperature=0, **options
        )
        assert completion.usage is not None
        return completion.usage.prompt_tokens

    bare = prompt_tokens(USER)
    assert prompt_tokens(USER, tools=TOOLS) > bare + 50  # the schemas are in the prompt
    assert prompt_tokens(USER, tools=TOOLS, tool_choice="none") == bare  # none: not shown

    def after_result(result: str) -> list[Any]:
        call = {"id": "call-1", "type": "function", "function": {"name": "weather"}}
        call["function"]["arguments"] = '{"city": "Oslo", "days": 2}'
        return [
            *USER,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call-1", "content": result},
        ]

    short = prompt_tokens(after_result("5 C"), tools=TOOLS)
    longer = prompt_tokens(after_result("5 C, light rain from the west all afternoon"), tools=TOOLS)
    assert longer > short > prompt_tokens(USER, tools=TOOLS)


@pytest.mark.parametrize("model", FORMATS)
def test_a_turn_of_parallel_calls_goes_back_to_every_format(
    client: openai.OpenAI, model: str
) -> None:
    """The calls this server answered with, ids and all, and their results, sent back: Llama
    3's template takes one call a turn and Mistral's ids of 9 letters and digits, and neither
    refuses the conversation."""
    first = client.chat.completions.create(
        model=model,
        messages=USER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "weather"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=120,
    ).choices[0]
    made = first.message.tool_calls or []
    assert len(made) == 1
    second = made[0].model_copy(update={"id": made[0].id + "-2"})
    history: list[Any] = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call.model_dump(exclude_none=True) for call in (made[0], second)],
        },
        {"role": "tool", "tool_call_id": second.id, "content": "sun"},
        {"role": "tool", "tool_call_id": made[0].id, "content": "rain"},
    ]
    answer = client.chat.completions.create(
        model=model, messages=history, tools=TOOLS, temperature=0, max_tokens=4
    )
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > prompt_tokens_of(client, model, USER, TOOLS)


def prompt_tokens_of(client: openai.OpenAI, model: str, messages: Any, tools: Any) -> int:
    completion = client.chat.completions.create(
        model=model, messages=messages, tools=tools, max_tokens=1, temperature=0
    )
    assert completion.usage is not None
    return completion.usage.prompt_tokens


def test_messages_a_template_refuses_are_a_400_with_its_reason(url: str) -> None:
    """Mistral's template wants user and assistant turns in turn: two user turns are the
    caller's mistake, named as the template names it (not a 500), and fail alone."""
    twice = [*USER, *USER]
    response = post(url, {"model": "mistral-tools", "messages": twice, "max_tokens": 2})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages"
    assert "model 'mistral-tools'" in error["message"]
    assert "roles must alternate" in error["message"]
    assert (
        post(url, {"model": "mistral-tools", "messages": USER, "max_tokens": 2}).status_code == 200
    )


@pytest.mark.parametrize("model", FORMATS)
def test_auto_with_a_response_format_answers_in_it_or_calls(
    client: openai.OpenAI, model: str
) -> None:
    form = {
        "type": "json_schema",
        "json_schema": {
            "name": "reply",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
                "additionalProperties": False,
            },
        },
    }
    for seed in range(4):
        choice = client.chat.completions.create(
            model=model,
            messages=USER,
            tools=TOOLS,
            response_format=form,  # type: ignore[arg-type]
            temperature=1.0,
            seed=seed,
            max_tokens=120,
        ).choices[0]
        if choice.message.tool_calls:  # a call, or calls (the budget may cut a later one)
            assert choice.finish_reason in ("tool_calls", "length")
            for call in choice.message.tool_calls:
                check_call(call)
        else:
            assert json.loads(choice.message.content or "") in ({"ok": True}, {"ok": False})


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def test_a_model_whose_template_cannot_show_tools_is_a_400_naming_the_fix(url: str) -> None:
    response = post(url, {"model": "plain", "messages": USER, "tools": TOOLS})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools"
    assert "model 'plain' cannot call tools" in error["message"]
    assert "does not show tools" in error["message"]
    # without tools the same model answers
    assert post(url, {"model": "plain", "messages": USER, "max_tokens": 2}).status_code == 200


def test_a_strict_function_the_engine_cannot_hold_is_a_400(url: str) -> None:
    unenforceable = {"type": "object", "if": {"required": ["a"]}}
    tool = {
        "type": "function",
        "function": {"name": "rule", "strict": True, "parameters": unenforceable},
    }
    response = post(url, {"model": "qwen-a", "messages": USER, "tools": [tool]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools"
    assert "function 'rule'" in error["message"]
    lenient = {**tool, "function": {**tool["function"], "strict": False}}
    body = {"model": "qwen-a", "messages": USER, "tools": [lenient], "max_tokens": 2}
    assert post(url, body).status_code == 200
