"""Tool calling on local models: tools shown by the chat template, calls read from the answer.

The format is Hermes', which Qwen2.5, Qwen3, QwQ and the Hermes 2/3 models are trained on (their
chat templates render it): the tools' schemas are listed in the system turn, and the model calls
one by writing ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``; results come
back in ``<tool_response>`` blocks of a user turn. A model whose template does not render tools,
or renders another format, is refused with the reason (``check_renders_tools``).

Calls are held to the tools while decoding (llguidance, as in ``grammar``): after the model opens
``<tool_call>``, only a declared function's name and arguments its JSON Schema accepts can follow;
with ``tool_choice`` ``required`` (or one named function) the answer is nothing but calls. So a
call a local model makes always parses and names a real tool, whatever the model.
"""

from __future__ import annotations

import contextlib
import json
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from skillswitch.exceptions import ToolCallingUnsupportedError
from skillswitch.inference.grammar import OutputGrammar, check_grammar, object_schema

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "CallableFunction",
    "ReadAnswer",
    "ReadCall",
    "ToolCallText",
    "check_renders_tools",
    "read_tool_calls",
    "template_messages",
    "tool_call_grammar",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_CALL = re.compile(re.escape(CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(CALL_CLOSE), re.DOTALL)

Choice = Literal["auto", "required"]


@dataclass(frozen=True, slots=True)
class CallableFunction:
    """A function the model may call: its name and the JSON Schema of its arguments.

    ``strict``: a schema keyword the grammar engine cannot enforce is an error (OpenAI's
    ``strict`` functions); otherwise it is ignored while decoding."""

    name: str
    parameters: Mapping[str, Any] | None = None
    strict: bool = False


def tool_call_grammar(
    functions: Sequence[CallableFunction],
    *,
    choice: Choice | str = "auto",
    parallel: bool = True,
    answer: Mapping[str, Any] | None = None,
    strict_answer: bool = False,
) -> OutputGrammar:
    """The grammar of an answer that may (``auto``) or must (``required``, or a function's
    name) call ``functions``; ``parallel`` False allows one call at most.

    ``auto``: free text, with every ``<tool_call>`` block held to the functions; with an
    ``answer`` schema (a ``response_format``), either calls or one JSON object it accepts.
    Otherwise: only calls, one per block, separated by a newline. Raises ``GrammarError``
    naming the function whose schema cannot be enforced.

    >>> tool_call_grammar([CallableFunction("now")], choice="required").label
    'tool calls'
    """
    from llguidance import LLMatcher

    if not functions:
        raise ValueError("no functions to call; give at least one")
    if choice not in ("auto", "required"):
        functions = [f for f in functions if f.name == choice]
        if not functions:
            raise ValueError(f"tool_choice names {choice!r}, which is not among the functions")
    schemas = []
    for function in functions:
        schema = object_schema(function.parameters, strict=function.strict)
        check_grammar(
            LLMatcher.grammar_from_json_schema(schema),
            f"function {function.name!r}",
            strict=function.strict,
        )
        schemas.append((function.name, schema))
    answer_schema = None
    if choice == "auto" and answer is not None:
        answer_schema = object_schema(answer, strict=strict_answer)
        check_grammar(
            LLMatcher.grammar_from_json_schema(answer_schema),
            "response_format",
            strict=strict_answer,
        )
    sources = [
        LLMatcher.grammar_from_lark(_lark(schemas, choice, parallel, answer_schema, special))
        for special in (False, True)
    ]
    check_grammar(sources[0], "tool calls", strict=any(f.strict for f in functions))
    return OutputGrammar(
        sources[0], "tool calls", special_source=sources[1], special_tags=(CALL_OPEN, CALL_CLOSE)
    )


def _lark(
    schemas: Sequence[tuple[str, Mapping[str, Any]]],
    choice: str,
    parallel: bool,
    answer: Mapping[str, Any] | None,
    special: bool,
) -> str:
    """The Lark grammar of the calls. ``special``: the tags are the tokenizer's own special
    tokens (Qwen2.5's ``<tool_call>`` is one token), which a model writes as such; otherwise
    they are text."""

    def tag(text: str) -> str:
        return text if special else json.dumps(text)

    rules = [
        "%llguidance {}",
        "call_body: " + " | ".join(f"body_{i}" for i in range(len(schemas))),
    ]
    for index, (name, schema) in enumerate(schemas):
        opening = '\n{"name": ' + json.dumps(name) + ', "arguments": '
        rules.append(
            f"body_{index}: {json.dumps(opening)} %json {json.dumps(schema)} "
            f'"}}\\n" {tag(CALL_CLOSE)}'
        )
    calls = 'call ("\\n" call)*' if parallel else "call"
    if choice == "auto" and answer is None:
        rules += [
            "start: call* TEXT" if parallel else "start: call? TEXT",
            "call: call_open call_body",
            r"TEXT: /(.|\n)*/",
            # text, up to the opening tag (lazy: the text ends at the first "<tool_call>",
            # where a call's grammar takes over; a special token never occurs in text)
            f"call_open: TEXT {tag(CALL_OPEN)}"
            if special
            else f"call_open[lazy]: TEXT {tag(CALL_OPEN)}",
        ]
    else:  # only calls, or calls or the answer's object
        either = "" if answer is None else f" | %json {json.dumps(answer)}"
        rules += [f"start: {calls}{either}", f"call: {tag(CALL_OPEN)} call_body"]
    return "\n".join(rules)


@dataclass(frozen=True, slots=True)
class ReadCall:
    name: str
    arguments: str
    """JSON text of the arguments object (OpenAI's shape)."""


@dataclass(frozen=True, slots=True)
class ReadAnswer:
    """An answer read for tool calls: the text before the first call, and the calls."""

    content: str
    calls: tuple[ReadCall, ...]


def read_tool_calls(text: str) -> ReadAnswer:
    """The calls written in ``text`` and the text before them.

    A block that is not a JSON object with a ``name`` and object ``arguments`` means the text
    was not a call after all: then the whole text is the answer and there are no calls (so
    nothing the model wrote is lost). A block left open at the end (the token budget ran out)
    is dropped.

    >>> read_tool_calls('Sure.<tool_call>{"name": "now", "arguments": {}}</tool_call>')
    ReadAnswer(content='Sure.', calls=(ReadCall(name='now', arguments='{}'),))
    """
    start = text.find(CALL_OPEN)
    if start < 0:
        return ReadAnswer(text, ())
    calls = []
    for block in _CALL.finditer(text, start):
        call = _call(block.group(1))
        if call is None:
            return ReadAnswer(text, ())
        calls.append(call)
    if not calls:
        return ReadAnswer(text, ())
    return ReadAnswer(text[:start].rstrip(), tuple(calls))


def _call(block: str) -> ReadCall | None:
    try:
        value = json.loads(block)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as JSON text
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ReadCall(name, json.dumps(arguments, ensure_ascii=False))


class ToolCallText:
    """A streamed answer that may call tools: ``feed`` returns the text that is surely not part
    of a call (it holds back a trailing ``<tool_`` that may open one, and trailing whitespace
    that would end the text before a call); ``finish`` reads the whole answer and returns what
    is left to show and the calls."""

    __slots__ = ("_held", "_shown", "_text")

    def __init__(self) -> None:
        self._text = ""
        self._shown = 0
        self._held = False  # a call has opened: nothing more is shown until the end

    def feed(self, chunk: str) -> str:
        self._text += chunk
        if self._held:
            return ""
        cut = self._text.find(CALL_OPEN, self._shown)
        if cut >= 0:
            self._held = True
        else:
            cut = _partial_open(self._text, self._shown)
        end = max(len(self._text[:cut].rstrip()), self._shown)
        shown, self._shown = self._text[self._shown : end], end
        return shown

    def finish(self) -> tuple[str, tuple[ReadCall, ...]]:
        """The text not shown yet (empty when the answer calls tools) and the calls."""
        answer = read_tool_calls(self._text)
        if answer.calls:
            return "", answer.calls
        rest, self._shown = self._text[self._shown :], len(self._text)
        return rest, ()


def _partial_open(text: str, since: int) -> int:
    """Where a suffix of ``text`` that could grow into ``<tool_call>`` starts (else its end)."""
    for size in range(min(len(CALL_OPEN) - 1, len(text) - since), 0, -1):
        if text.endswith(CALL_OPEN[:size]):
            return len(text) - size
    return len(text)


# --- the chat template ---------------------------------------------------------------------------

_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "skillswitch_probe_function",
        "description": "",
        "parameters": {"type": "object", "properties": {}},
    },
}
_RENDERS_TOOLS: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def check_renders_tools(tokenizer: Any, model: str) -> None:
    """Raise ``ToolCallingUnsupportedError`` unless ``tokenizer``'s chat template shows tools to
    the model and writes calls in the Hermes format this module reads (checked once per
    tokenizer)."""
    if tokenizer not in _RENDERS_TOOLS:
        _RENDERS_TOOLS[tokenizer] = _template_problem(tokenizer)
    problem = _RENDERS_TOOLS[tokenizer]
    if problem is not None:
        raise ToolCallingUnsupportedError(f"model {model!r} cannot call tools: {problem}")


def _template_problem(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return "it has no chat template; add a chat_template.jinja that renders tools"
    if not isinstance(template, str):
        template = json.dumps(template)  # several named templates
    probe = [{"role": "user", "content": "hi"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], tokenize=False)
    except Exception as exc:  # a template error is the template's, reported as such
        return f"its chat template fails when given tools ({type(exc).__name__}: {exc})"
    if "skillswitch_probe_function" not in str(rendered):
        return (
            "its chat template does not show tools to the model; use a template that renders "
            "them (as Qwen2.5's and Hermes' do), or leave out tools"
        )
    if CALL_OPEN not in template:
        return (
            "its chat template writes tool calls in a format skillswitch does not read; the "
            f"Hermes format ({CALL_OPEN} ... {CALL_CLOSE}: Qwen2.5, Qwen3, Hermes) is read"
        )
    return None


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates read them: a call's ``arguments`` as an object, not the JSON
    text of OpenAI's shape (templates write it with ``tojson``)."""
    out = []
    for message in messages:
        item = dict(message)
        calls = item.get("tool_calls")
        if calls:
            item["tool_calls"] = [_template_call(call) for call in calls]
            if item.get("content") is None:
                item["content"] = ""
        out.append(item)
    return out


def _template_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):  # else the template writes the text
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}
