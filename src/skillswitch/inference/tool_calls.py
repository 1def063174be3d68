"""Tool calling on local models: tools shown by the chat template, calls read from the answer.

The template shows the tools' schemas to the model, and the model calls one in the format it
was trained on: Hermes' ``<tool_call>`` blocks (Qwen2.5, Qwen3, Hermes), Llama 3's JSON object
or Mistral's ``[TOOL_CALLS]`` (``tool_formats``, which finds a template's format from its
text, unless the model's config names it). Results go back as the template writes them. A
model whose template does not show tools, or writes calls in a format not read, is refused
with the reason (``tool_call_format``).

Calls are held to the tools while decoding (llguidance, as in ``grammar``): once the model opens
a call, only a declared function's name and arguments its JSON Schema accepts can follow; with
``tool_choice`` ``required`` (or one named function) the answer is nothing but calls. So a call
a local model makes always parses and names a real tool, whatever the model.
"""

from __future__ import annotations

import contextlib
import json
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from skillswitch.exceptions import ToolCallingUnsupportedError
from skillswitch.inference.grammar import OutputGrammar, check_grammar, object_schema
from skillswitch.inference.tool_formats import (
    HERMES,
    ReadAnswer,
    ReadCall,
    ToolCallFormat,
    detect_format,
)

__all__ = [
    "CallableFunction",
    "ReadAnswer",
    "ReadCall",
    "ToolCallText",
    "history_format",
    "read_tool_calls",
    "template_messages",
    "tool_call_format",
    "tool_call_grammar",
]

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
    call_format: ToolCallFormat = HERMES,
) -> OutputGrammar:
    """The grammar of an answer that may (``auto``) or must (``required``, or a function's
    name) call ``functions`` in the format ``call_format``; ``parallel`` False allows one call
    at most (a format that takes one call a turn always does).

    ``auto``: free text or calls; with an ``answer`` schema (a ``response_format``), calls or
    one JSON object it accepts. Otherwise: only calls. Raises ``GrammarError`` naming the
    function whose schema cannot be enforced.

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
    parallel = parallel and call_format.parallel
    text = call_format.lark(schemas, choice, parallel, answer_schema, json.dumps)
    source = LLMatcher.grammar_from_lark(text)
    check_grammar(source, "tool calls", strict=any(f.strict for f in functions))
    if not call_format.tags:
        return OutputGrammar(source, "tool calls")
    # The same grammar with each tag as the tokenizer's own special token, when it has one
    # (Qwen2.5's "<tool_call>", Mistral's "[TOOL_CALLS]"): the token, by its id, is filled in
    # where a placeholder stands (``grammar.grammar_source``). The placeholder is made of
    # characters that JSON text here never holds (it is written ASCII-only).
    marker = f"\u27e6{uuid.uuid4().hex}"
    special = call_format.lark(
        schemas,
        choice,
        parallel,
        answer_schema,
        lambda tag: f"{marker}{call_format.tags.index(tag)}\u27e7",
    )
    return OutputGrammar(
        source,
        "tool calls",
        special_source=LLMatcher.grammar_from_lark(special),
        special_tags=call_format.tags,
        special_marker=marker,
    )


def read_tool_calls(text: str, call_format: ToolCallFormat = HERMES) -> ReadAnswer:
    """The calls written in ``text`` (in the format ``call_format``) and the text before them.

    A call that does not parse (not a JSON object with a ``name`` and object ``arguments``)
    means the text was not a call after all: then the whole text is the answer and there are no
    calls (so nothing the model wrote is lost). A call left open at the end (the token budget
    ran out) is dropped.

    >>> read_tool_calls('Sure.<tool_call>{"name": "now", "arguments": {}}</tool_call>')
    ReadAnswer(content='Sure.', calls=(ReadCall(name='now', arguments='{}'),))
    """
    return call_format.read(text)


class ToolCallText:
    """A streamed answer that may call tools: ``feed`` returns the text that is surely not part
    of a call (it holds back a tail that may open one, and trailing whitespace that would end
    the text before a call; in a format whose calls are the whole answer, everything until the
    answer's first characters show it is not a call); ``finish`` reads the whole answer and
    returns what is left to show and the calls."""

    __slots__ = ("_format", "_free", "_held", "_shown", "_text")

    def __init__(self, call_format: ToolCallFormat = HERMES) -> None:
        self._format = call_format
        self._text = ""
        self._shown = 0
        self._held = False  # a call has opened: nothing more is shown until the end
        self._free = False  # the answer is surely text: everything is shown

    def feed(self, chunk: str) -> str:
        self._text += chunk
        if self._held:
            return ""
        if self._format.at_start:
            return self._feed_at_start()
        cut = min(
            (i for o in self._format.openings if (i := self._text.find(o, self._shown)) >= 0),
            default=-1,
        )
        if cut >= 0:
            self._held = True
        else:
            cut = _partial_opening(self._text, self._shown, self._format.openings)
        end = max(len(self._text[:cut].rstrip()), self._shown)
        shown, self._shown = self._text[self._shown : end], end
        return shown

    def _feed_at_start(self) -> str:
        if not self._free:
            begun = self._text.lstrip()
            if any(begun.startswith(o) for o in self._format.openings):
                self._held = True
                return ""
            if any(o.startswith(begun) for o in self._format.openings):
                return ""  # nothing yet, or what may still open a call
            self._free = True
        shown, self._shown = self._text[self._shown :], len(self._text)
        return shown

    def finish(self) -> tuple[str, tuple[ReadCall, ...]]:
        """The text not shown yet (empty when the answer calls tools) and the calls."""
        answer = self._format.read(self._text)
        if answer.calls:
            return "", answer.calls
        rest, self._shown = self._text[self._shown :], len(self._text)
        return rest, ()


def _partial_opening(text: str, since: int, openings: Sequence[str]) -> int:
    """Where the longest suffix of ``text`` that could grow into an opening starts (else its
    end)."""
    longest = max(len(o) for o in openings)
    for size in range(min(longest - 1, len(text) - since), 0, -1):
        if any(text.endswith(o[:size]) for o in openings if size < len(o)):
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


def tool_call_format(
    tokenizer: Any, model: str, declared: ToolCallFormat | None = None
) -> ToolCallFormat:
    """The format ``model`` writes tool calls in: ``declared`` (its config's, or the one found
    from its folder), else the one found from ``tokenizer``'s chat template. Raises
    ``ToolCallingUnsupportedError`` unless the template shows tools to the model (checked once
    per tokenizer) and the format is one this module reads."""
    if tokenizer not in _SHOWN:
        _SHOWN[tokenizer] = _why_tools_not_shown(tokenizer)
    why = _SHOWN[tokenizer]
    if why:
        raise ToolCallingUnsupportedError(f"model {model!r} cannot call tools: {why}")
    found = declared or detect_format(_template_text(tokenizer))
    if found is None:
        raise ToolCallingUnsupportedError(
            f"model {model!r} cannot call tools: its chat template writes tool calls in a "
            "format skillswitch does not read; it reads Hermes' <tool_call> blocks (Qwen2.5, "
            'Qwen3, Hermes), Llama 3\'s JSON object ({"name": ..., "parameters": ...}) and '
            "Mistral's [TOOL_CALLS] (list, or name[ARGS]{...}); if the model writes one of "
            "these, name it in the model's config (tool_call_format)"
        )
    return found


_SHOWN: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return template if isinstance(template, str) else json.dumps(template)  # named templates


def _why_tools_not_shown(tokenizer: Any) -> str:
    """Why the template does not show tools to the model ("" when it does)."""
    if not getattr(tokenizer, "chat_template", None):
        return "it has no chat template; add a chat_template.jinja that renders tools"
    probe = [{"role": "user", "content": "hi"}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], tokenize=False)
    except Exception as exc:  # a template error is the template's, reported as such
        return f"its chat template fails when given tools ({type(exc).__name__}: {exc})"
    if "skillswitch_probe_function" not in str(rendered):
        return (
            "its chat template does not show tools to the model; use a template that renders "
            "them (as Qwen2.5's, Llama 3.1's and Mistral's do), or leave out tools"
        )
    return ""


def history_format(tokenizer: Any, declared: ToolCallFormat | None = None) -> ToolCallFormat:
    """The format of the calls already in a conversation: ``declared``, else as
    ``tokenizer``'s template writes them (Hermes', which needs nothing of the messages, when
    the template shows none)."""
    return declared or detect_format(_template_text(tokenizer)) or HERMES


def template_messages(
    messages: Sequence[Mapping[str, Any]], call_format: ToolCallFormat = HERMES
) -> list[dict[str, Any]]:
    """Messages as chat templates read them: a call's ``arguments`` as an object, not the JSON
    text of OpenAI's shape (templates write it with ``tojson``), and as ``call_format``'s
    templates require (one call a turn for Llama 3, call ids of 9 letters and digits for
    Mistral)."""
    out = []
    for message in messages:
        item = dict(message)
        calls = item.pop("tool_calls", None)
        if calls:  # an empty list or None would still read as calls to a template's "in" test
            item["tool_calls"] = [_template_call(call) for call in calls]
            if item.get("content") is None:
                item["content"] = ""
        out.append(item)
    return call_format.for_template(out)


def _template_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):  # else the template writes the text
            function["arguments"] = json.loads(arguments)
    return {**call, "function": function}
