"""Llama 3's and Mistral's tool-call formats: found from the template (or named in a model's
config), held to a grammar over the model's own tokens (Mistral's tags as its special tokens),
read back, streamed, and a conversation's calls and results shown to the real-shaped templates
(``inference.tiny_templates``), whose own checks (one call a turn, 9-character ids) they pass.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from skillswitch.inference.registry import ModelRegistry
from skillswitch.inference.tool_calls import (
    CallableFunction,
    ToolCallText,
    read_tool_calls,
    template_messages,
    tool_call_format,
    tool_call_grammar,
)
from skillswitch.inference.tool_formats import (
    HERMES,
    LLAMA3_JSON,
    MISTRAL,
    MISTRAL_V11,
    ReadAnswer,
    ReadCall,
    ToolCallFormat,
    detect_format,
)
from tests.inference.test_tool_calls import WEATHER

OSLO = ReadCall("weather", '{"city": "Oslo"}')
NOW = ReadCall("now", "{}")
LLAMA_CALL = '{"name": "weather", "parameters": {"city": "Oslo"}}'
MISTRAL_CALLS = '[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Oslo"}}]'
V11_CALL = '[TOOL_CALLS]weather[ARGS]{"city": "Oslo"}'
V11_NOW = "[TOOL_CALLS]now[ARGS]{}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LLAMA_CALL, ReadAnswer("", (OSLO,))),
        ("\n " + LLAMA_CALL + " \n", ReadAnswer("", (OSLO,))),
        ("<|python_tag|>" + LLAMA_CALL, ReadAnswer("", (OSLO,))),  # as Llama 3.1 may open it
        (f'{LLAMA_CALL}; {{"name": "now", "parameters": {{}}}}', ReadAnswer("", (OSLO, NOW))),
        ('{"name": "weather", "arguments": {"city": "Oslo"}}', ReadAnswer("", (OSLO,))),
        ("It rains in Oslo.", ReadAnswer("It rains in Oslo.", ())),
        # an object that is not a call, or a call cut short: the text is the answer, whole
        ('{"city": "Oslo"}', ReadAnswer('{"city": "Oslo"}', ())),
        ('{"name": "weather", "param', ReadAnswer('{"name": "weather", "param', ())),
        (f"{LLAMA_CALL} and more words", ReadAnswer(f"{LLAMA_CALL} and more words", ())),
        ("Call: " + LLAMA_CALL, ReadAnswer("Call: " + LLAMA_CALL, ())),  # only at the start
    ],
)
def test_llama3_calls_are_the_whole_answer(text: str, expected: ReadAnswer) -> None:
    assert read_tool_calls(text, LLAMA3_JSON) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MISTRAL_CALLS, ReadAnswer("", (OSLO,))),
        (
            '[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Oslo"}}, '
            '{"name": "now", "arguments": {}, "id": "a1b2c3d4e"}]',
            ReadAnswer("", (OSLO, NOW)),
        ),
        ("Let me see. " + MISTRAL_CALLS, ReadAnswer("Let me see.", (OSLO,))),
        ('[TOOL_CALLS]{"name": "now", "arguments": {}}', ReadAnswer("", (NOW,))),
        ("No calls here.", ReadAnswer("No calls here.", ())),
        ("[TOOL_CALLS] [not json]", ReadAnswer("[TOOL_CALLS] [not json]", ())),
        ('[TOOL_CALLS] [{"name": "weat', ReadAnswer('[TOOL_CALLS] [{"name": "weat', ())),
        ('[TOOL_CALLS] [{"arguments": {}}]', ReadAnswer('[TOOL_CALLS] [{"arguments": {}}]', ())),
    ],
)
def test_mistral_calls_follow_their_tag(text: str, expected: ReadAnswer) -> None:
    assert read_tool_calls(text, MISTRAL) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (V11_CALL, ReadAnswer("", (OSLO,))),
        (V11_CALL + V11_NOW, ReadAnswer("", (OSLO, NOW))),
        ("Let me see.\n" + V11_CALL, ReadAnswer("Let me see.", (OSLO,))),
        ("[TOOL_CALLS]now[CALL_ID]a1b2c3d4e[ARGS]{}", ReadAnswer("", (NOW,))),  # the id dropped
        ("[TOOL_CALLS]now{}", ReadAnswer("", (NOW,))),  # [ARGS] dropped by a decoder
        # the budget ran out in a later call: dropped; in the only one: the text is the answer
        (V11_CALL + "[TOOL_CALLS]now[ARGS]{", ReadAnswer("", (OSLO,))),
        (V11_CALL + "[TOOL_CALLS]wea", ReadAnswer("", (OSLO,))),
        ('[TOOL_CALLS]weather[ARGS]{"city": "Os', None),
        ("No calls here.", None),
        (V11_CALL + " and more", None),
        ("[TOOL_CALLS]now[ARGS]not json", None),
        ("[TOOL_CALLS][ARGS]{}", None),  # no name
        ("[TOOL_CALLS]two words[ARGS]{}", None),
        ('[TOOL_CALLS]weather[ARGS]"Oslo"', None),  # arguments are an object
        (MISTRAL_CALLS, None),  # the older format is not this one's
        ("[TOOL_CALLS]now[ARGS]nope" + V11_CALL, None),  # a broken call before the last
    ],
)
def test_mistral_v11_calls_are_a_name_and_arguments_after_each_tag(
    text: str, expected: ReadAnswer | None
) -> None:
    assert read_tool_calls(text, MISTRAL_V11) == (expected or ReadAnswer(text, ()))


@pytest.mark.parametrize("size", [1, 2, 5, 13, 1000])
@pytest.mark.parametrize(
    ("call_format", "text"),
    [
        (LLAMA3_JSON, LLAMA_CALL),
        (LLAMA3_JSON, "  " + LLAMA_CALL),
        (LLAMA3_JSON, "<|python_tag|>" + LLAMA_CALL),
        (LLAMA3_JSON, "Sunny, with {braces} inside."),
        (LLAMA3_JSON, "<|pyt is not the tag"),
        (LLAMA3_JSON, '{"not": "a call"}'),
        (MISTRAL, MISTRAL_CALLS),
        (MISTRAL, "Checking.  " + MISTRAL_CALLS),
        (MISTRAL, "A [TOOL list] but no call, ending in [TOOL_C"),
        (MISTRAL, "[TOOL_CALLS] [broken"),
        (MISTRAL_V11, V11_CALL + V11_NOW),
        (MISTRAL_V11, "Checking.\n" + V11_CALL),
        (MISTRAL_V11, "Text with [ARGS] and {braces}, ending in [TOOL_"),
        (MISTRAL_V11, "[TOOL_CALLS]now[ARGS]{broken"),
    ],
)
def test_a_stream_shows_exactly_the_text_a_whole_answer_has(
    call_format: ToolCallFormat, text: str, size: int
) -> None:
    reader = ToolCallText(call_format)
    shown = "".join(reader.feed(text[i : i + size]) for i in range(0, len(text), size))
    rest, calls = reader.finish()
    whole = read_tool_calls(text, call_format)
    assert calls == whole.calls
    assert shown + rest == whole.content
    if whole.calls:
        assert "{" not in shown
        assert "TOOL" not in shown


def test_text_streams_as_soon_as_it_cannot_open_a_llama3_call() -> None:
    reader = ToolCallText(LLAMA3_JSON)
    assert reader.feed("  ") == ""  # may still open a call
    assert reader.feed("It") == "  It"
    assert reader.feed(" rains {x}") == " rains {x}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{- '<tool_call>\\n' + call | tojson }}", HERMES),
        ('{{- "[TOOL_CALLS] [" }}', MISTRAL),
        ("{{- '[TOOL_CALLS]' + tool['function']['name'] + '[ARGS]' + arguments }}", MISTRAL_V11),
        ('<|start_header_id|>{{ \'{"name": "\' + n + \'", "parameters": \' }}', LLAMA3_JSON),
        ("<|start_header_id|>user<|end_header_id|>{{ content }}", None),  # Llama 3.0: no tools
        ("{{ messages | tojson }}", None),
    ],
)
def test_the_format_is_found_from_the_template_s_text(
    template: str, expected: ToolCallFormat | None
) -> None:
    assert detect_format(template) is expected


@pytest.fixture(scope="module")
def tokenizers(tool_format_models: dict[str, Path]) -> dict[str, Any]:
    transformers = pytest.importorskip("transformers")
    return {
        name: transformers.AutoTokenizer.from_pretrained(folder)
        for name, folder in tool_format_models.items()
    }


def test_the_folder_and_the_loaded_tokenizer_agree_on_the_format(
    tool_format_models: dict[str, Path],
    tokenizers: dict[str, Any],
    tiny_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    registry = ModelRegistry()
    expected = {
        "llama3-tools": LLAMA3_JSON,
        "mistral-tools": MISTRAL,
        "mistral-v11-tools": MISTRAL_V11,
    }
    for name, folder in tool_format_models.items():
        assert registry.add(name, folder).info.tool_call_format is expected[name]
        assert tool_call_format(tokenizers[name], name) is expected[name]
    assert registry.add("qwen-a", tiny_models["qwen-a"]).info.tool_call_format is HERMES
    plain = tmp_path / "plain"
    shutil.copytree(tiny_models["qwen-a"], plain)
    (plain / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert registry.add("plain", plain).info.tool_call_format is None


NOW_FUNCTION = CallableFunction("now", {"type": "object", "properties": {}})
MISTRAL_TWO = (
    '[TOOL_CALLS] [{"name": "weather", "arguments": {"city": "Oslo"}}, '
    '{"name": "now", "arguments": {}}]'
)


def matches(tokenizer: Any, grammar: Any, text: str) -> tuple[bool, dict[int, str]]:
    """Whether ``text``, as the model's tokens (a special token written as such), is a
    complete answer in ``grammar`` as the decoder starts it; and the tokens it keeps."""
    llguidance = pytest.importorskip("llguidance")
    from llguidance.hf import from_tokenizer

    from skillswitch.inference.grammar import grammar_source

    lltokenizer = from_tokenizer(tokenizer, n_vocab=len(tokenizer))
    source, kept = grammar_source(lltokenizer, grammar)
    matcher = llguidance.LLMatcher(lltokenizer, source, log_level=0)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ok = all(matcher.consume_token(t) for t in ids) and bool(matcher.is_accepting())
    return ok, kept


@pytest.mark.parametrize(
    ("model", "choice", "parallel", "text", "ok"),
    [
        ("llama3-tools", "required", True, LLAMA_CALL, True),
        ("llama3-tools", "required", True, LLAMA_CALL.replace("Oslo", "Rome"), False),
        ("llama3-tools", "required", True, LLAMA_CALL.replace("weather", "wether"), False),
        ("llama3-tools", "required", True, f'{LLAMA_CALL}; {{"name": "now"', False),  # one call
        ("llama3-tools", "required", True, "Sunny.", False),
        ("llama3-tools", "now", True, '{"name": "now", "parameters": {}}', True),
        ("llama3-tools", "now", True, LLAMA_CALL, False),
        ("llama3-tools", "auto", True, "Sunny, 20 degrees.", True),
        ("llama3-tools", "auto", True, LLAMA_CALL, True),
        ("llama3-tools", "auto", True, LLAMA_CALL.replace("Oslo", "Rome"), False),
        # free text may not open with "{": that is a call, and is held to the functions
        ("llama3-tools", "auto", True, ' {"city": "Rome"}', False),
        ("mistral-tools", "required", True, MISTRAL_CALLS, True),
        ("mistral-tools", "required", True, MISTRAL_TWO, True),
        ("mistral-tools", "required", False, MISTRAL_TWO, False),
        ("mistral-tools", "required", True, MISTRAL_CALLS.replace("Oslo", "Rome"), False),
        ("mistral-tools", "required", True, "Sunny.", False),
        ("mistral-tools", "auto", True, "Sunny, 20 degrees.", True),
        ("mistral-tools", "auto", True, MISTRAL_CALLS, True),
        ("mistral-tools", "auto", True, MISTRAL_CALLS.replace("weather", "wether"), False),
        ("mistral-tools", "auto", True, "Use [brackets] and {braces} freely.", True),
        ("mistral-v11-tools", "required", True, V11_CALL, True),
        ("mistral-v11-tools", "required", True, V11_CALL + V11_NOW, True),
        ("mistral-v11-tools", "required", False, V11_CALL + V11_NOW, False),
        ("mistral-v11-tools", "required", True, V11_CALL.replace("Oslo", "Rome"), False),
        ("mistral-v11-tools", "required", True, "Sunny.", False),
        ("mistral-v11-tools", "now", True, V11_NOW, True),
        ("mistral-v11-tools", "now", True, V11_CALL, False),
        ("mistral-v11-tools", "auto", True, "Sunny, 20 degrees.", True),
        ("mistral-v11-tools", "auto", True, V11_CALL, True),
        ("mistral-v11-tools", "auto", True, "Let me check.\n" + V11_CALL + V11_NOW, True),
        ("mistral-v11-tools", "auto", False, "Let me check.\n" + V11_CALL + V11_NOW, False),
        ("mistral-v11-tools", "auto", True, V11_CALL.replace("weather", "wether"), False),
        ("mistral-v11-tools", "auto", True, V11_CALL + " and text after", False),
        ("mistral-v11-tools", "auto", True, "Use [brackets] and {braces} freely.", True),
    ],
)
def test_the_grammar_holds_each_format_s_calls_to_the_functions(
    tokenizers: dict[str, Any], model: str, choice: str, parallel: bool, text: str, ok: bool
) -> None:
    call_format = tool_call_format(tokenizers[model], model)
    grammar = tool_call_grammar(
        [WEATHER, NOW_FUNCTION], choice=choice, parallel=parallel, call_format=call_format
    )
    assert matches(tokenizers[model], grammar, text)[0] is ok


def test_mistral_s_tag_is_written_as_its_special_token_and_kept_in_the_text(
    tokenizers: dict[str, Any],
) -> None:
    tokenizer = tokenizers["mistral-tools"]
    grammar = tool_call_grammar([WEATHER], choice="required", call_format=MISTRAL)
    tag = tokenizer.convert_tokens_to_ids("[TOOL_CALLS]")
    ok, kept = matches(tokenizer, grammar, MISTRAL_CALLS)
    assert ok
    assert kept == {tag: "[TOOL_CALLS]"}
    assert tokenizer.decode([tag], skip_special_tokens=True) == ""  # what decoding alone does


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Sunny.", True),
        ("Let me check. " + V11_CALL + V11_NOW, True),
        ("Let me check. " + V11_CALL.replace("Oslo", "Rome"), False),
        ("Tags as text: [ARGS] and [TOOL_C", True),
        (V11_CALL + " and text after", False),
    ],
)
def test_mistral_v11_tags_written_as_text_where_the_tokenizer_has_no_such_tokens(
    tokenizers: dict[str, Any], text: str, ok: bool
) -> None:
    tokenizer = tokenizers["llama3-tools"]  # no [TOOL_CALLS] or [ARGS] among its tokens
    grammar = tool_call_grammar([WEATHER, NOW_FUNCTION], call_format=MISTRAL_V11)
    assert matches(tokenizer, grammar, text) == (ok, {})


def test_mistral_v11_s_tags_are_written_as_its_special_tokens_and_kept_in_the_text(
    tokenizers: dict[str, Any],
) -> None:
    tokenizer = tokenizers["mistral-v11-tools"]
    grammar = tool_call_grammar([WEATHER, NOW_FUNCTION], call_format=MISTRAL_V11)
    ok, kept = matches(tokenizer, grammar, "Checking. " + V11_CALL + V11_NOW)
    assert ok
    tags = ("[TOOL_CALLS]", "[ARGS]")
    assert kept == {tokenizer.convert_tokens_to_ids(tag): tag for tag in tags}


@pytest.mark.parametrize("choice", ["auto", "required"])
@pytest.mark.parametrize("model", ["llama3-tools", "mistral-tools", "mistral-v11-tools"])
def test_auto_with_an_answer_schema_is_calls_or_that_object(
    tokenizers: dict[str, Any], model: str, choice: str
) -> None:
    tokenizer = tokenizers[model]
    call_format = tool_call_format(tokenizer, model)
    answer = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    grammar = tool_call_grammar(
        [WEATHER], choice=choice, answer=answer, strict_answer=True, call_format=call_format
    )
    call = {LLAMA3_JSON: LLAMA_CALL, MISTRAL: MISTRAL_CALLS, MISTRAL_V11: V11_CALL}[call_format]
    assert matches(tokenizer, grammar, call)[0]
    assert matches(tokenizer, grammar, '{"ok": true}')[0] is (choice == "auto")
    assert not matches(tokenizer, grammar, "free text")[0]


def conversation(ids: tuple[str | None, str | None]) -> list[dict[str, Any]]:
    """A turn with two calls and their results, in OpenAI's shape (results in reverse order)."""

    def call(id_: str | None, city: str) -> dict[str, Any]:
        function = {"name": "weather", "arguments": json.dumps({"city": city})}
        return {"type": "function", "function": function} | ({"id": id_} if id_ else {})

    def result(id_: str | None, text: str) -> dict[str, Any]:
        return {"role": "tool", "content": text} | ({"tool_call_id": id_} if id_ else {})

    first, second = ids
    results = [result(second, "sun"), result(first, "rain")]
    if first is None:
        results.reverse()  # without ids, results come in the calls' order
    return [
        {"role": "user", "content": "Rain in Oslo or Lima?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call(first, "Oslo"), call(second, "Lima")],
        },
        *results,
    ]


@pytest.mark.parametrize("ids", [("call-1", "call-2"), (None, None), ("a1b2c3d4e", "call_xyz")])
def test_llama3_sees_one_call_a_turn_each_followed_by_its_result(
    tokenizers: dict[str, Any], ids: tuple[str | None, str | None]
) -> None:
    shown = template_messages(conversation(ids), LLAMA3_JSON)
    roles = [
        (m["role"], m.get("tool_calls", [{}])[0].get("function", {}).get("arguments"))
        for m in shown
    ]
    assert roles == [
        ("user", None),
        ("assistant", {"city": "Oslo"}),
        ("tool", None),
        ("assistant", {"city": "Lima"}),
        ("tool", None),
    ]
    assert [m["content"] for m in shown if m["role"] == "tool"] == ["rain", "sun"]
    tools = [
        {"type": "function", "function": {"name": "weather", "parameters": WEATHER.parameters}}
    ]
    rendered = tokenizers["llama3-tools"].apply_chat_template(
        shown, tools=tools, add_generation_prompt=True, tokenize=False
    )
    oslo, lima = rendered.index('"parameters": {"city": "Oslo"}'), rendered.index('Lima"}}')
    assert oslo < rendered.index("rain") < lima < rendered.index("sun")
    with pytest.raises(Exception, match="single tool-calls"):  # what the template checks
        tokenizers["llama3-tools"].apply_chat_template(
            template_messages(conversation(ids)), tools=tools, tokenize=False
        )


@pytest.mark.parametrize("ids", [("call-1", "call-2"), (None, None), ("a1b2c3d4e", "call_xyz")])
def test_mistral_sees_call_ids_of_nine_letters_and_digits_matched_to_results(
    tokenizers: dict[str, Any], ids: tuple[str | None, str | None]
) -> None:
    original = conversation(ids)
    shown = template_messages(original, MISTRAL)
    call_ids = [call["id"] for call in shown[1]["tool_calls"]]
    assert all(len(id_) == 9 and id_.isalnum() for id_ in call_ids)
    assert len(set(call_ids)) == 2
    if ids[0] == "a1b2c3d4e":
        assert call_ids[0] == "a1b2c3d4e"  # an id the template takes is kept
    answered = {m["tool_call_id"]: m["content"] for m in shown[2:]}
    assert answered == {call_ids[0]: "rain", call_ids[1]: "sun"}
    assert original == conversation(ids)  # the caller's messages are not changed
    rendered = tokenizers["mistral-tools"].apply_chat_template(shown, tokenize=False)
    assert f'"call_id": "{call_ids[0]}"' in rendered
    with pytest.raises(Exception, match="length 9"):  # what the template checks
        tokenizers["mistral-tools"].apply_chat_template(template_messages(original), tokenize=False)


def test_mistral_v11_sees_each_call_after_its_tag_and_the_results_in_order(
    tokenizers: dict[str, Any],
) -> None:
    original = conversation(("call-1", "call-2"))
    tools = [
        {"type": "function", "function": {"name": "weather", "parameters": WEATHER.parameters}}
    ]
    rendered = tokenizers["mistral-v11-tools"].apply_chat_template(
        template_messages(original, MISTRAL_V11),
        tools=tools,
        add_generation_prompt=True,
        tokenize=False,
    )
    calls = '[TOOL_CALLS]weather[ARGS]{"city": "Oslo"}[TOOL_CALLS]weather[ARGS]{"city": "Lima"}'
    assert calls + "</s>" in rendered
    assert rendered.index("[AVAILABLE_TOOLS]") < rendered.index("[INST]Rain in Oslo")
    assert rendered.endswith("[TOOL_RESULTS]sun[/TOOL_RESULTS][TOOL_RESULTS]rain[/TOOL_RESULTS]")
    assert read_tool_calls(calls, MISTRAL_V11).calls == (
        OSLO,
        ReadCall("weather", '{"city": "Lima"}'),
    )


CUSTOM_TEMPLATE = (  # shows tools, writes no calls: a template whose format cannot be found
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_model_s_config_names_the_format_its_template_does_not_show(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from skillswitch.exceptions import ToolCallingUnsupportedError
    from skillswitch.inference import GenerationParams, LocalBackend
    from skillswitch.inference.requests import Conversation

    folder = tmp_path / "custom"
    shutil.copytree(tiny_models["qwen-a"], folder)
    (folder / "chat_template.jinja").write_text(CUSTOM_TEMPLATE)
    registry = ModelRegistry()
    assert registry.add("found", folder).info.tool_call_format is None
    assert registry.add("named", folder, tool_call_format="hermes").info.tool_call_format is HERMES
    with pytest.raises(ValueError, match=r"tool_call_format 'json' of model 'x' is not one of"):
        registry.add("x", folder, tool_call_format="json")
    backend = LocalBackend(registry, device="cpu")
    try:
        tools = [{"type": "function", "function": {"name": "now", "parameters": {}}}]
        user = [{"role": "user", "content": "What time is it?"}]
        closed = {"type": "object", "properties": {}, "additionalProperties": False}
        grammar = tool_call_grammar(
            [CallableFunction("now", closed)], choice="required", call_format=HERMES
        )
        params = GenerationParams(max_new_tokens=160, grammar=grammar)
        named = backend.generate_sync("named", Conversation(user, tools=tools), params)
        assert read_tool_calls(named.text, backend.tool_call_format("named")).calls == (NOW,), named
        with pytest.raises(ToolCallingUnsupportedError, match=r"name it in the model's config"):
            backend.generate_sync("found", Conversation(user, tools=tools), params)
    finally:
        backend.close()


def test_the_config_names_a_model_s_format_and_refuses_one_not_read(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from typing import get_args

    from skillswitch.config import parse_config
    from skillswitch.config.models import LocalModelConfig
    from skillswitch.exceptions import ConfigError
    from skillswitch.inference.configured import build_backend
    from skillswitch.inference.tool_formats import FORMATS
    from tests.support.configs import DEFAULT_SKILLS

    allowed = get_args(LocalModelConfig.model_fields["tool_call_format"].annotation)
    assert allowed == ("auto", *FORMATS)

    def config(form: str) -> str:
        return DEFAULT_SKILLS + (
            "inference:\n  device: cpu\n  models:\n"
            f"    - {{name: custom, path: {tiny_models['qwen-a']}, tool_call_format: {form}}}\n"
        )

    backend = build_backend(parse_config(config("mistral_v11")).inference)
    try:
        assert backend.tool_call_format("custom") is MISTRAL_V11
    finally:
        backend.close()
    with pytest.raises(ConfigError, match=r"tool_call_format.*'mistral_v11'.*got 'json'"):
        parse_config(config("json"))


@pytest.mark.parametrize("incremental", [True, False])
def test_decoding_keeps_the_tag_it_is_told_to_and_drops_other_special_tokens(
    tokenizers: dict[str, Any], incremental: bool
) -> None:
    from skillswitch.inference.decode_rows import TextTracker

    tokenizer = tokenizers["mistral-tools"]
    ids = tokenizer("Olá. " + MISTRAL_CALLS + "</s>", add_special_tokens=False)["input_ids"]
    tag = tokenizer.convert_tokens_to_ids("[TOOL_CALLS]")
    assert tag in ids
    kept = TextTracker(tokenizer, (), incremental=incremental, keep={tag: "[TOOL_CALLS]"})
    streamed = "".join(kept.add(token) for token in ids) + kept.flush()
    assert streamed == kept.text == "Olá. " + MISTRAL_CALLS
    dropped = TextTracker(tokenizer, (), incremental=incremental)
    streamed = "".join(dropped.add(token) for token in ids) + dropped.flush()
    assert streamed == dropped.text == "Olá. " + MISTRAL_CALLS.removeprefix("[TOOL_CALLS]")


def test_messages_a_template_refuses_fail_alone_not_their_batch(
    tool_format_models: dict[str, Path],
) -> None:
    from skillswitch.exceptions import MessagesRefusedError
    from skillswitch.inference import GenerationParams, LocalBackend

    backend = LocalBackend.from_folders(
        {"mistral": tool_format_models["mistral-tools"]}, device="cpu"
    )
    try:
        user = {"role": "user", "content": "Rain in Oslo?"}
        good, refused = backend.scheduler.submit_together(
            "mistral", [[user], [user, user]], GenerationParams(max_new_tokens=3)
        )
        assert good.result_sync(timeout=60).completion_tokens == 3
        with pytest.raises(MessagesRefusedError, match="roles must alternate"):
            refused.result_sync(timeout=60)
        assert backend.scheduler.stats.batches == 1  # they were decoded together
    finally:
        backend.close()
