"""Constrained decoding: a local model's answer held to a JSON object, or to JSON a schema accepts.

llguidance (the grammar engine behind vLLM's and SGLang's ``guidance`` backends) compiles a JSON
Schema into a grammar over the model's own tokens. At each decode step it gives the set of tokens
that may come next as a bitmask; the loop sets every other token's logit to ``-inf`` before the
greedy or sampled choice, then feeds the chosen token back. So whatever the model, the answer is
JSON in the asked form, and the row ends as soon as the grammar is complete (a closed object
admits nothing but the end). Rows without a grammar in the same batch are left untouched.

The JSON is written with one space after ``:`` and ``,`` and no other whitespace: a weak model
cannot spend its token budget on blank lines. A row that hits ``max_new_tokens`` first ends with
``finish_reason: length`` and unfinished JSON, as OpenAI's do.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skillswitch.exceptions import GrammarError
from skillswitch.inference.loading import LoadedModel

__all__ = [
    "GrammarMatcher",
    "OutputGrammar",
    "check_grammar",
    "grammar_source",
    "json_grammar",
    "mask_disallowed",
    "object_schema",
    "start_matcher",
]

_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


@dataclass(frozen=True, slots=True)
class OutputGrammar:
    """What a generation's text must match, compiled for llguidance (made by ``json_grammar``).

    ``label`` names it in errors (``json_object``, ``json_schema 'weather'``)."""

    source: str
    label: str
    special_source: str | None = None
    """The same grammar with ``special_tags`` as single special tokens, for a tokenizer that
    has them so (as Qwen2.5's has ``<tool_call>``); ``source`` spells them as text. Tag ``k``
    stands there as ``special_marker`` + ``k`` + ``"\u27e7"``, which the token's id replaces
    once the tokenizer is known."""
    special_tags: tuple[str, ...] = ()
    special_marker: str = ""


def json_grammar(
    schema: Mapping[str, Any] | None = None, *, strict: bool = True, label: str = "json_object"
) -> OutputGrammar:
    """One JSON object; with ``schema``, one that the schema accepts.

    ``strict``: a schema keyword the engine cannot enforce (``if``/``then``, say) is an error;
    otherwise such keywords are ignored while decoding (the rest still holds). Raises
    ``GrammarError`` naming what is wrong with the schema.

    >>> json_grammar({"type": "object", "properties": {"km": {"type": "number"}}}).label
    'json_object'
    """
    from llguidance import LLMatcher

    body = object_schema(schema, strict=strict)
    try:
        source = LLMatcher.grammar_from_json_schema(body)
    except ValueError as exc:
        raise GrammarError(f"the {label} schema cannot be compiled: {exc}") from None
    check_grammar(source, label, strict=strict)
    return OutputGrammar(source, label)


def object_schema(schema: Mapping[str, Any] | None, *, strict: bool) -> dict[str, Any]:
    """``schema`` (None: any object) as the engine compiles it: one object, in the layout
    above; ``strict``: keywords the engine cannot enforce are errors, else ignored."""
    body = dict(schema) if schema is not None else dict(_ANY_OBJECT)
    kind = body.get("type", "object")
    if isinstance(kind, list) and "object" in kind:
        kind = "object"  # ["object", "null"]: the answer is one object, never the others
    body["type"] = kind
    body["x-guidance"] = {**_LAYOUT, "lenient": not strict}
    return body


def check_grammar(source: str, label: str, *, strict: bool) -> None:
    """Raise ``GrammarError`` when llguidance cannot enforce ``source`` (made from ``label``)."""
    from llguidance import LLMatcher

    problem = LLMatcher.validate_grammar(source)
    if problem:
        hint = (
            "; leave those keywords out, or set strict: false to have them checked after "
            "generation only"
            if strict and "Unimplemented" in problem
            else ""
        )
        raise GrammarError(f"the {label} schema cannot be enforced while decoding: {problem}{hint}")


class GrammarMatcher:
    """One generation's place in its grammar: which tokens may come next, and whether it is
    complete."""

    __slots__ = ("_matcher", "kept_tokens", "label")

    def __init__(
        self, matcher: Any, label: str, kept_tokens: Mapping[int, str] | None = None
    ) -> None:
        self._matcher = matcher
        self.label = label
        self.kept_tokens: Mapping[int, str] = kept_tokens or {}
        """Special tokens the grammar writes that are part of the answer's text (a tool
        call's tag), by id: decoding keeps them, though it drops other special tokens."""

    @property
    def complete(self) -> bool:
        """Nothing but the end may follow (the object is closed)."""
        return bool(self._matcher.is_stopped())

    @property
    def failed(self) -> bool:
        return bool(self._matcher.is_error())

    def accept(self, token: int) -> bool:
        """Advance past ``token``; False when the grammar does not allow it (then ``failed``)."""
        return bool(self._matcher.consume_token(token))

    def fill_mask(self, row: Any) -> None:
        """Write the allowed-token bitmask into ``row`` (a contiguous int32 CPU tensor)."""
        self._matcher.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())


# The grammar engine's view of a tokenizer takes a while to build for a real vocabulary (about a
# second for 150k tokens): once per tokenizer, for as long as its model is loaded.
_TOKENIZERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def start_matcher(loaded: LoadedModel, grammar: OutputGrammar) -> GrammarMatcher:
    """A matcher of ``grammar`` over ``loaded``'s tokens, at the start of the answer. Raises
    ``GrammarError`` when this model's tokenizer cannot carry a grammar."""
    from llguidance import LLMatcher

    tokenizer = _grammar_tokenizer(loaded)
    source, kept = grammar_source(tokenizer, grammar)
    matcher = LLMatcher(tokenizer, source, log_level=0)
    if matcher.is_error():
        raise GrammarError(
            f"model {loaded.name!r} cannot be held to {grammar.label}: {matcher.get_error()}"
        )
    return GrammarMatcher(matcher, grammar.label, kept)


def mask_disallowed(logits: Any, rows: Sequence[int], matchers: Sequence[GrammarMatcher]) -> None:
    """Set to ``-inf``, in place, the logits of every token that ``matchers[k]`` does not allow
    next in row ``rows[k]`` of ``logits`` (one mask per constrained row, one copy to the device).

    A matcher always allows something: in a dead end (``failed``) it allows only the end-of-text
    tokens, so the row finishes rather than draws from nothing.
    """
    import torch

    vocab = logits.shape[-1]
    words = (vocab + 31) // 32
    bitmask = torch.empty((len(rows), words), dtype=torch.int32)
    if len(matchers) == 1:
        matchers[0].fill_mask(bitmask[0])
    else:  # the rows' masks in parallel, on llguidance's threads (the GIL released)
        pairs = [(matcher._matcher, k) for k, matcher in enumerate(matchers)]
        _executor().unsafe_compute_mask_ptr(pairs, bitmask.data_ptr(), words * 4, len(rows))
    bitmask = bitmask.to(logits.device, non_blocking=True)
    shifts = torch.arange(32, dtype=torch.int32, device=logits.device)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).reshape(len(rows), words * 32)[:, :vocab]
    index = torch.tensor(list(rows), dtype=torch.long, device=logits.device)
    selected = logits.index_select(0, index)
    selected.masked_fill_(allowed == 0, float("-inf"))
    logits.index_copy_(0, index, selected)


def grammar_source(tokenizer: Any, grammar: OutputGrammar) -> tuple[str, dict[int, str]]:
    """``grammar``'s source for this (llguidance) tokenizer, and the special tokens it writes,
    by id: its tags as special tokens when each is one special token here (the model was
    trained to write them so), else as text."""
    if grammar.special_source is None:
        return grammar.source, {}
    kept: dict[int, str] = {}
    for tag in grammar.special_tags:
        ids = tokenizer.tokenize_str(tag)
        if len(ids) != 1 or not tokenizer.is_special_token(ids[0]):
            return grammar.source, {}
        kept[ids[0]] = tag
    source = grammar.special_source
    for index, token in enumerate(kept):
        source = source.replace(f"{grammar.special_marker}{index}\u27e7", f"<[{token}]>")
    return source, kept


@functools.cache
def _executor() -> Any:
    from llguidance import LLExecutor

    return LLExecutor()


def _grammar_tokenizer(loaded: LoadedModel) -> Any:
    tokenizer = loaded.tokenizer
    known = _TOKENIZERS.get(tokenizer)
    if known is not None:
        return known
    import llguidance.hf

    try:
        built = llguidance.hf.from_tokenizer(
            tokenizer, n_vocab=_vocab_size(loaded), eos_token=sorted(loaded.eos_token_ids) or None
        )
    except ValueError as exc:
        raise GrammarError(
            f"model {loaded.name!r} cannot be held to a grammar: {exc} (its folder needs a "
            "tokenizer.json); leave out response_format for it"
        ) from None
    _TOKENIZERS[tokenizer] = built
    return built


def _vocab_size(loaded: LoadedModel) -> int:
    """The logits' width: the output layer's rows, which may exceed the tokenizer's size."""
    head = loaded.model.get_output_embeddings()
    if head is not None:
        return int(head.weight.shape[0])
    return int(loaded.model.config.vocab_size)
