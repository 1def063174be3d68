"""Reading tool calls from a local model's answer, streaming around them, and their grammar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skillswitch.exceptions import GrammarError, ToolCallingUnsupportedError
from skillswitch.inference.tool_calls import (
    CallableFunction,
    ReadAnswer,
    ReadCall,
    ToolCallText,
    read_tool_calls,
    template_messages,
    tool_call_format,
    tool_call_grammar,
)
from skillswitch.inference.tool_formats import HERMES

CALL = '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
NOW = '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Just text.", ReadAnswer("Just text.", ())),
        (CALL, ReadAnswer("", (ReadCall("weather", '{"city": "Oslo"}'),))),
        (
            f"Let me look.\n{CALL}\n{NOW}",
            ReadAnswer(
                "Let me look.",
                (ReadCall("weather", '{"city": "Oslo"}'), ReadCall("now", "{}")),
            ),
        ),
        # arguments written as JSON text, and Llama's "parameters": read all the same
        (
            '<tool_call>{"name": "now", "arguments": "{\\"tz\\": \\"UTC\\"}"}</tool_call>',
            ReadAnswer("", (ReadCall("now", '{"tz": "UTC"}'),)),
        ),
        (
            '<tool_call>{"name": "now", "parameters": {"tz": "UTC"}}</tool_call>',
            ReadAnswer("", (ReadCall("now", '{"tz": "UTC"}'),)),
        ),
        # a call cut short by the token budget is dropped; the finished one is kept
        (
            f'{CALL}\n<tool_call>\n{{"name": "no',
            ReadAnswer("", (ReadCall("weather", '{"city": "Oslo"}'),)),
        ),
    ],
)
def test_calls_are_read_with_the_text_before_them(text: str, expected: ReadAnswer) -> None:
    assert read_tool_calls(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>not json</tool_call>",
        '<tool_call>["weather"]</tool_call>',
        '<tool_call>{"arguments": {}}</tool_call>',
        '<tool_call>{"name": "now", "arguments": [1]}</tool_call>',
        f"{CALL} and <tool_call>{{broken</tool_call>",
        "I would write <tool_call> here but never close it",
    ],
)
def test_text_that_is_not_a_well_formed_call_is_the_answer_whole(text: str) -> None:
    assert read_tool_calls(text) == ReadAnswer(text, ())


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 1000])
@pytest.mark.parametrize(
    "text",
    [
        "Plain text with a < sign and <tool_ inside <b>bold</b>.",
        f"Checking.  \n{CALL}",
        CALL,
        "ends with <tool_c",
        "broken <tool_call>{oops</tool_call> tail",
    ],
)
def test_a_stream_shows_exactly_the_text_a_whole_answer_has(text: str, size: int) -> None:
    """Whatever the chunking, what is shown while streaming plus what ``finish`` returns is the
    answer's content, and the calls are the same as when read whole."""
    reader = ToolCallText()
    shown = "".join(reader.feed(text[i : i + size]) for i in range(0, len(text), size))
    rest, calls = reader.finish()
    whole = read_tool_calls(text)
    assert calls == whole.calls
    assert shown + rest == whole.content
    if whole.calls:
        assert "<tool" not in shown


def test_template_messages_give_templates_the_arguments_as_an_object() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
                {"id": "2", "type": "function", "function": {"name": "b", "arguments": "{bad"}},
            ],
        },
    ]
    shown = template_messages(messages)
    assert shown[0] == messages[0]
    assert shown[1]["content"] == ""
    assert shown[1]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert shown[1]["tool_calls"][1]["function"]["arguments"] == "{bad"
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'  # not changed


@pytest.fixture(scope="module")
def tokenizer(tiny_models: dict[str, Path]) -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(tiny_models["qwen-a"])


def matches(tokenizer: Any, grammar: Any, text: str) -> bool:
    """Whether ``text``, as the model's tokens, is a complete answer in ``grammar``."""
    llguidance = pytest.importorskip("llguidance")
    from llguidance.hf import from_tokenizer

    lltokenizer = from_tokenizer(tokenizer, n_vocab=len(tokenizer))
    matcher = llguidance.LLMatcher(lltokenizer, grammar.source, log_level=0)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return all(matcher.consume_token(t) for t in ids) and bool(matcher.is_accepting())


WEATHER = CallableFunction(
    "weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


@pytest.mark.parametrize(
    ("choice", "parallel", "text", "ok"),
    [
        ("required", True, CALL, True),
        ("required", True, f"{CALL}\n{NOW}", True),
        ("required", False, f"{CALL}\n{NOW}", False),  # one call at most
        ("required", True, "Sure: " + CALL, False),  # only calls
        ("required", True, CALL.replace("Oslo", "Rome"), False),  # not in the enum
        ("required", True, CALL.replace("weather", "wether"), False),  # no such function
        ("required", True, CALL.replace(": ", ":"), False),  # the layout is fixed
        ("now", True, NOW, True),
        ("now", True, CALL, False),  # another function than the one named
        ("auto", True, "Just text, no call.", True),
        ("auto", True, f"Let me look.\n{CALL}", True),
        ("auto", True, "Let me look.\n" + CALL.replace("Oslo", "Rome"), False),
    ],
)
def test_the_grammar_holds_calls_to_the_functions(
    tokenizer: Any, choice: str, parallel: bool, text: str, ok: bool
) -> None:
    now = CallableFunction("now", {"type": "object", "properties": {}})
    grammar = tool_call_grammar([WEATHER, now], choice=choice, parallel=parallel)
    assert matches(tokenizer, grammar, text) is ok


def test_auto_with_an_answer_schema_is_calls_or_that_object(tokenizer: Any) -> None:
    answer = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    grammar = tool_call_grammar([WEATHER], answer=answer, strict_answer=True)
    assert matches(tokenizer, grammar, json.dumps({"ok": True}))
    assert matches(tokenizer, grammar, CALL)
    assert not matches(tokenizer, grammar, "free text")


def test_a_strict_function_with_keywords_the_engine_cannot_hold_is_named() -> None:
    pytest.importorskip("llguidance")
    rule = CallableFunction("rule", {"type": "object", "if": {"required": ["a"]}}, strict=True)
    with pytest.raises(GrammarError, match="function 'rule'"):
        tool_call_grammar([rule], choice="required")
    lenient = CallableFunction("rule", rule.parameters, strict=False)
    assert tool_call_grammar([lenient], choice="required").label == "tool calls"


PLAIN = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
OTHER_FORMAT = (  # calls as functionary writes them, which skillswitch does not read
    "{% if tools %}{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}"
    "{% for m in messages %}{{ m['content'] }}{% endfor %}<|from|>assistant<|recipient|>"
)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (None, "has no chat template"),
        (PLAIN, "does not show tools to the model"),
        (OTHER_FORMAT, "format skillswitch does not read"),
        ("{{ raise_exception('no tools here') if tools }}", "fails when given tools"),
    ],
)
def test_a_template_that_cannot_carry_tools_is_refused_with_the_reason(
    tokenizer: Any, template: str | None, reason: str
) -> None:
    copy = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    copy.chat_template = template
    with pytest.raises(ToolCallingUnsupportedError, match=reason):
        tool_call_format(copy, "m")
    assert tool_call_format(tokenizer, "m") is HERMES  # the tiny models' template carries them
