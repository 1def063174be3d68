"""The formats local models write tool calls in: how each is found, held to a grammar and read.

A chat template shows the tools to the model in the format it was trained on, and the model
writes its calls in the same one. skillswitch reads three, which cover the open models that
call tools:

- ``hermes``: text, then ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``
  blocks; results in ``<tool_response>`` blocks (Qwen2.5, Qwen3, QwQ, Hermes 2 and 3).
- ``llama3_json``: the whole answer is one ``{"name": ..., "parameters": {...}}`` object;
  results in ``ipython`` turns (Llama 3.1, 3.2 and 3.3, whose templates take one call a turn).
- ``mistral``: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]``; results in
  ``[TOOL_RESULTS]`` blocks that name their call by an id of 9 letters and digits (Mistral 7B
  v0.3, Nemo, Small 3).
- ``mistral_v11``: text, then ``[TOOL_CALLS]name[ARGS]{...}`` for each call; results in
  ``[TOOL_RESULTS]`` blocks (the tokenizers of version 11 and later: Mistral Small 3.2,
  Magistral, Devstral).

``detect_format`` finds a template's format from its text, as it writes a call; a model's
config may name it instead (``tool_call_format``). The grammar of each format (``lark``) is
what ``tool_calls.tool_call_grammar`` holds a model's answer to.
"""

from __future__ import annotations

import abc
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FORMATS",
    "HERMES",
    "LLAMA3_JSON",
    "MISTRAL",
    "MISTRAL_V11",
    "FormatName",
    "ReadAnswer",
    "ReadCall",
    "ToolCallFormat",
    "detect_format",
]

FormatName = Literal["hermes", "llama3_json", "mistral", "mistral_v11"]

Tag = Callable[[str], str]
"""A tag as the grammar writes it: as one special token, or as text."""


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


class ToolCallFormat(abc.ABC):
    """One way of writing calls. ``openings``: the texts a call may start with (a stream
    holds back what may grow into one); ``at_start``: calls are the whole answer, never after
    text; ``tags``: the texts that a tokenizer may have as single special tokens."""

    name: FormatName
    openings: tuple[str, ...]
    at_start: bool = False
    tags: tuple[str, ...] = ()
    parallel: bool = True
    """Whether one answer may hold several calls."""

    @abc.abstractmethod
    def lark(
        self,
        functions: Sequence[tuple[str, Mapping[str, Any]]],
        choice: str,
        parallel: bool,
        answer: Mapping[str, Any] | None,
        tag: Tag,
    ) -> str:
        """The Lark grammar of an answer that calls ``functions`` (their names and the schemas
        of their arguments, laid out as ``grammar.object_schema`` lays them): text or calls
        (``auto``), the answer's object or calls (``auto`` with ``answer``), or only calls;
        ``tag`` writes a tag."""

    def body(self, name: str, schema: Mapping[str, Any], tag: Tag) -> str:
        """The Lark of a call of function ``name`` whose arguments ``schema`` accepts."""
        opening = "{" + json.dumps("name") + ": " + json.dumps(name) + ", "
        opening += json.dumps(self._arguments_key) + ": "
        return f'{json.dumps(opening)} %json {json.dumps(schema)} "}}"'

    _arguments_key = "arguments"

    def _alternatives(
        self, rule: str, functions: Sequence[tuple[str, Mapping[str, Any]]], tag: Tag
    ) -> str:
        """Lark rule ``rule``: a call of any one of ``functions`` (``body``)."""
        names = [f"{rule}_{i}" for i in range(len(functions))]
        lines = [f"{rule}: " + " | ".join(names)]
        lines += [
            f"{name}: {self.body(*function, tag)}"
            for name, function in zip(names, functions, strict=True)
        ]
        return "\n".join(lines)

    @abc.abstractmethod
    def read(self, text: str) -> ReadAnswer:
        """The calls written in ``text`` and the text before them; a call that does not parse
        means there were none, and the whole text is the answer (nothing is lost)."""

    def for_template(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` (calls' arguments already objects) as this format's templates take
        them."""
        return messages

    def __repr__(self) -> str:
        return f"ToolCallFormat({self.name!r})"


def _call_of(value: Any) -> ReadCall | None:
    """A call from a parsed object: a ``name`` and object ``arguments`` (or ``parameters``,
    or the JSON text of an object, as some models write them); else None."""
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ReadCall(name, json.dumps(arguments, ensure_ascii=False))


def _json_values(text: str) -> list[Any] | None:
    """The JSON values written one after another in ``text`` (separated by whitespace or
    ``;``), or None when any does not parse."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    at = 0
    while True:
        while at < len(text) and (text[at].isspace() or text[at] == ";"):
            at += 1
        if at == len(text):
            return values
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        values.append(value)


class _Hermes(ToolCallFormat):
    name: FormatName = "hermes"
    openings = ("<tool_call>",)
    tags = ("<tool_call>", "</tool_call>")
    _block = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)

    def body(self, name: str, schema: Mapping[str, Any], tag: Tag) -> str:
        return '"\\n" ' + super().body(name, schema, tag) + ' "\\n"'

    def lark(
        self,
        functions: Sequence[tuple[str, Mapping[str, Any]]],
        choice: str,
        parallel: bool,
        answer: Mapping[str, Any] | None,
        tag: Tag,
    ) -> str:
        rules = ["%llguidance {}", self._alternatives("call_body", functions, tag)]
        calls = 'call ("\\n" call)*' if parallel else "call"
        if choice == "auto" and answer is None:
            # a special token cannot end a lazy rule: then the rule is eager, which it may be
            # (a special token never occurs in text)
            special = tag("<tool_call>") != json.dumps("<tool_call>")
            rules += [
                "start: call* TEXT" if parallel else "start: call? TEXT",
                "call: call_open call_body " + tag("</tool_call>"),
                r"TEXT: /(.|\n)*/",
                # text, up to the opening tag (lazy: the text ends at the first "<tool_call>",
                # where a call's grammar takes over)
                f"call_open: TEXT {tag('<tool_call>')}"
                if special
                else f"call_open[lazy]: TEXT {tag('<tool_call>')}",
            ]
        else:  # only calls, or calls or the answer's object
            either = "" if answer is None else f" | %json {json.dumps(answer)}"
            rules += [
                f"start: {calls}{either}",
                f"call: {tag('<tool_call>')} call_body {tag('</tool_call>')}",
            ]
        return "\n".join(rules)

    def read(self, text: str) -> ReadAnswer:
        start = text.find("<tool_call>")
        if start < 0:
            return ReadAnswer(text, ())
        calls = []
        for block in self._block.finditer(text, start):
            value = _loads(block.group(1))
            call = _call_of(value)
            if call is None:
                return ReadAnswer(text, ())
            calls.append(call)
        if not calls:  # a block left open at the end (the token budget ran out) is dropped
            return ReadAnswer(text, ())
        return ReadAnswer(text[:start].rstrip(), tuple(calls))


class _Llama3Json(ToolCallFormat):
    name: FormatName = "llama3_json"
    openings = ("{", "<|python_tag|>")
    at_start = True
    parallel = False  # Llama 3's templates raise on a turn with several calls
    _arguments_key = "parameters"

    def lark(
        self,
        functions: Sequence[tuple[str, Mapping[str, Any]]],
        choice: str,
        parallel: bool,
        answer: Mapping[str, Any] | None,
        tag: Tag,
    ) -> str:
        if choice == "auto" and answer is not None:
            # calls and the answer are all objects: one JSON grammar of either, since the
            # engine's lexer would take a call's opening for the answer's and not look back
            either = [_call_schema(name, schema) for name, schema in functions]
            either.append({k: v for k, v in answer.items() if k != "x-guidance"})
            layout = {**answer.get("x-guidance", {}), "lenient": True}  # parts checked apart
            schema = {"anyOf": either, "x-guidance": layout}
            return f"%llguidance {{}}\nstart: %json {json.dumps(schema)}"
        rules = ["%llguidance {}", self._alternatives("call", functions, tag)]
        if choice == "auto":
            # text that does not open with "{": an answer that does is a call
            rules += ["start: call | TEXT", r"TEXT: /(.|\n)*/ & ~/\s*\{(.|\n)*/"]
        else:
            rules.append("start: call")
        return "\n".join(rules)

    def read(self, text: str) -> ReadAnswer:
        body = text.strip()
        body = body.removeprefix("<|python_tag|>").lstrip()
        if not body.startswith("{"):
            return ReadAnswer(text, ())
        values = _json_values(body)
        calls = [_call_of(value) for value in values or ()]
        if not calls or None in calls:
            return ReadAnswer(text, ())
        return ReadAnswer("", tuple(call for call in calls if call is not None))

    def for_template(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A turn with several calls as one turn per call, each followed by its result: the
        templates take one call a turn."""
        out: list[dict[str, Any]] = []
        at = 0
        while at < len(messages):
            message = messages[at]
            at += 1
            calls = message.get("tool_calls") or []
            if len(calls) < 2:
                out.append(message)
                continue
            results = []
            while at < len(messages) and messages[at].get("role") == "tool":
                results.append(messages[at])
                at += 1
            for call in calls:
                out.append({**message, "tool_calls": [call], "content": ""})
                result = _result_of(call, results)
                if result is not None:
                    out.append(result)
            out.extend(results)  # results that name no call of the turn stay, in order
        return out


class _Mistral(ToolCallFormat):
    name: FormatName = "mistral"
    openings = ("[TOOL_CALLS]",)
    tags: tuple[str, ...] = ("[TOOL_CALLS]",)

    def lark(
        self,
        functions: Sequence[tuple[str, Mapping[str, Any]]],
        choice: str,
        parallel: bool,
        answer: Mapping[str, Any] | None,
        tag: Tag,
    ) -> str:
        listed = 'call_body (", " call_body)*' if parallel else "call_body"
        rules = [
            "%llguidance {}",
            self._alternatives("call_body", functions, tag),
            f'calls: {tag("[TOOL_CALLS]")} " [" {listed} "]"',
        ]
        if choice == "auto" and answer is None:
            # the tag as text may not open free text, or the text would be an unchecked call
            rules += ["start: calls | TEXT", r"TEXT: /(.|\n)*/ & ~/\s*\[TOOL_CALLS\](.|\n)*/"]
        else:
            either = "" if answer is None else f" | %json {json.dumps(answer)}"
            rules.append(f"start: calls{either}")
        return "\n".join(rules)

    def read(self, text: str) -> ReadAnswer:
        start = text.find("[TOOL_CALLS]")
        if start < 0:
            return ReadAnswer(text, ())
        values = _json_values(text[start + len("[TOOL_CALLS]") :])
        if not values:
            return ReadAnswer(text, ())
        items = [
            item for value in values for item in (value if isinstance(value, list) else [value])
        ]
        calls = [_call_of(item) for item in items]
        if not calls or None in calls:
            return ReadAnswer(text, ())
        return ReadAnswer(text[:start].rstrip(), tuple(call for call in calls if call is not None))

    def for_template(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Call ids as the templates require them: 9 letters and digits (each other id mapped
        to one, the same in the call and in its result; a result without an id takes its
        call's, in order)."""
        out: list[dict[str, Any]] = []
        waiting: list[str] = []  # ids of the last turn's calls not answered yet
        for message in messages:
            calls = message.get("tool_calls")
            if calls:
                ids = [_mistral_id(call.get("id"), len(out), k) for k, call in enumerate(calls)]
                waiting = list(ids)
                calls = [{**call, "id": id_} for call, id_ in zip(calls, ids, strict=True)]
                out.append({**message, "tool_calls": calls})
            elif message.get("role") == "tool":
                given = message.get("tool_call_id")
                id_ = _mistral_id(given, 0, 0) if given else (waiting[0] if waiting else "")
                if id_ in waiting:
                    waiting.remove(id_)
                out.append({**message, "tool_call_id": id_})
            else:
                out.append(message)
        return out


class _MistralV11(_Mistral):
    """Each call as ``[TOOL_CALLS]name[ARGS]{...}``, after the answer's text if any; a call
    id (``[CALL_ID]id``, which some of these models write before ``[ARGS]``) is read and
    dropped. Ids in the conversation are mapped as ``mistral``'s are (templates that check
    them take them; those that show none ignore them)."""

    name: FormatName = "mistral_v11"
    tags = ("[TOOL_CALLS]", "[ARGS]")

    def body(self, name: str, schema: Mapping[str, Any], tag: Tag) -> str:
        return f"{json.dumps(name)} {tag('[ARGS]')} %json {json.dumps(schema)}"

    def lark(
        self,
        functions: Sequence[tuple[str, Mapping[str, Any]]],
        choice: str,
        parallel: bool,
        answer: Mapping[str, Any] | None,
        tag: Tag,
    ) -> str:
        opening = tag("[TOOL_CALLS]")
        more = f" ({opening} call_body)*" if parallel else ""
        rules = ["%llguidance {}", self._alternatives("call_body", functions, tag)]
        if choice == "auto" and answer is None:
            # text, then calls or not; as Hermes' text, lazy up to a tag written as text, and
            # eager before a special token (which never occurs in text and cannot end a lazy
            # rule)
            special = opening != json.dumps("[TOOL_CALLS]")
            rules += [
                f"start: TEXT | call_open call_body{more}",
                r"TEXT: /(.|\n)*/",
                f"call_open: TEXT {opening}" if special else f"call_open[lazy]: TEXT {opening}",
            ]
        else:
            either = "" if answer is None else f" | %json {json.dumps(answer)}"
            rules.append(f"start: {opening} call_body{more}{either}")
        return "\n".join(rules)

    def read(self, text: str) -> ReadAnswer:
        start = text.find("[TOOL_CALLS]")
        if start < 0:
            return ReadAnswer(text, ())
        parts = text[start + len("[TOOL_CALLS]") :].split("[TOOL_CALLS]")
        calls = []
        for k, part in enumerate(parts):
            call = _v11_call(part)
            if call is None:
                if k == len(parts) - 1 and k > 0:
                    break  # the last call, cut short (the budget ran out): dropped, as Hermes'
                return ReadAnswer(text, ())
            calls.append(call)
        return ReadAnswer(text[:start].rstrip(), tuple(calls))


_NAME = re.compile(r"[^\s\[\]{}\"]+")


def _v11_call(part: str) -> ReadCall | None:
    """``name[ARGS]{...}`` (or ``name{...}``, its tag not in the text; or with
    ``[CALL_ID]id`` before ``[ARGS]``) as a call, else None."""
    name, tagged, arguments = part.partition("[ARGS]")
    if not tagged:
        brace = part.find("{")
        if brace < 0:
            return None
        name, arguments = part[:brace], part[brace:]
    name = name.partition("[CALL_ID]")[0].strip()
    values = _json_values(arguments)
    if not _NAME.fullmatch(name) or values is None or len(values) != 1:
        return None
    return _call_of({"name": name, "arguments": values[0]})


_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _mistral_id(given: Any, turn: int, index: int) -> str:
    """``given`` when it is 9 letters and digits, else 9 derived from it (or from the call's
    place, when it has none)."""
    if isinstance(given, str) and _ID.fullmatch(given):
        return given
    seed = given if isinstance(given, str) and given else f"turn {turn} call {index}"
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    letters = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


def _result_of(call: Mapping[str, Any], results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Take from ``results`` the one that answers ``call`` (by id; by place when none has
    ids)."""
    for k, result in enumerate(results):
        if call.get("id") is not None and result.get("tool_call_id") == call.get("id"):
            return results.pop(k)
    if results and all(result.get("tool_call_id") is None for result in results):
        return results.pop(0)
    return None


def _call_schema(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a Llama 3 call of ``name``: ``{"name": ..., "parameters": {...}}``."""
    arguments = {k: v for k, v in schema.items() if k != "x-guidance"}
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "parameters": arguments},
        "required": ["name", "parameters"],
        "additionalProperties": False,
    }


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


HERMES: ToolCallFormat = _Hermes()
LLAMA3_JSON: ToolCallFormat = _Llama3Json()
MISTRAL: ToolCallFormat = _Mistral()
MISTRAL_V11: ToolCallFormat = _MistralV11()
FORMATS: dict[str, ToolCallFormat] = {
    f.name: f for f in (HERMES, LLAMA3_JSON, MISTRAL, MISTRAL_V11)
}


def detect_format(template: str) -> ToolCallFormat | None:
    """The format a chat template writes calls in, from its text (None: none of these).

    >>> detect_format("... {{- '<tool_call>' }} ...")
    ToolCallFormat('hermes')
    """
    if "<tool_call>" in template:
        return HERMES
    if "[TOOL_CALLS]" in template:
        return MISTRAL_V11 if "[ARGS]" in template else MISTRAL
    if "<|start_header_id|>" in template and '"parameters"' in template:
        return LLAMA3_JSON
    return None
