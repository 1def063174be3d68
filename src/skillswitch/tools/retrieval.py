"""Tool retrieval: which catalogue tools fit a request, or that none does, with no LLM calls.

Each tool is scored by the cosine between the request and "tool name in words: description"
(the router's encoder, MiniLM by default) plus ``lexical_weight`` times its BM25 score over name,
description and parameters, scaled so the request's best lexical match gets the full weight.
In a large catalogue of several servers, each tool also gets ``server_weight`` times its
server's score (the same mix over the server's name, description and tools), so a request
about slides lifts every tool of the presentation server. A request that carries a file path
or a URL adds ``argument_weight`` to the tools with a required parameter for one (a path, a
URL): "save the report to /root/notes.md" is a request for a tool that takes a path. With
``split_steps``, a multi-step request ("find the paper, then save a summary to notes.md") is
also ranked step by step, each tool keeping its best score over the request and its steps.

MiniLM reads English: a tool described mostly in Chinese, Japanese or Korean is embedded by
its server's and its own name, the Latin-script words of its description and its parameter
names (``encoder_reads_cjk=True`` keeps the description as it is, for a multilingual encoder).

"No tool applies" compares the best tool's *relevance* with ``threshold``: its cosine plus
``lexical_weight`` times the share of the request's words it contains (an absolute scale that
BM25, relative to the catalogue, is not), best over the whole request and its steps. An encoder
fitted by ``skillswitch fit tools`` on requests without a tool also corrects relevance by the
*argument evidence* (skillswitch.tools.evidence): whether the request gives what the tool needs.

Where the defaults come from (benchmarks/tool_retrieval.py): ``lexical_weight`` was chosen
among 0.1-0.5 while looking at BFCL multiple and live_multiple, ``server_weight`` among 0.3-1.0
while looking at LiveMCPBench; ``argument_weight``, ``split_steps`` and ``encoder_reads_cjk``
by 5-fold cross-validation over LiveMCPBench tasks (the benchmark reports the held-out folds);
``threshold`` is fitted on BFCL multiple (the highest that rejects at most 1% of its right
top-1 answers) and reported on the live splits, which it never saw. An encoder written by
``skillswitch fit tools`` carries its own threshold, fitted on requests held out of its fit.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from skillswitch.exceptions import RequestError
from skillswitch.router.encoders.base import Embeddings, Encoder
from skillswitch.router.encoders.cache import EmbeddingCache
from skillswitch.textio import split_parts
from skillswitch.tools.evidence import EvidenceModel, required_parameters

__all__ = [
    "BM25",
    "CatalogueEntry",
    "RetrievalSettings",
    "ToolHit",
    "ToolIndex",
    "ToolSearch",
    "dense_tool_text",
    "split_steps",
    "tokenize",
]

FloatArray = npt.NDArray[np.float64]
_ALNUM = re.compile(r"[A-Za-z0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_STOPWORD_TEXT = """
    a about above after again all am an and any are as at be been before being below between
    both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own
    please same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_CJK_RUN = re.compile(
    r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]+"
)
_CJK_SHARE = 0.1  # a description with at least this share of CJK characters is "in CJK"


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One tool as retrieval sees it: its server, name, description and JSON Schema input."""

    server: str
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    server_description: str = ""
    """What the server as a whole is for (context when a catalogue is large)."""

    def parameters(self) -> list[tuple[str, str]]:
        """(name, description) of each parameter, nested objects' properties included."""
        found: list[tuple[str, str]] = []
        _collect_parameters(self.input_schema, found, depth=0)
        return found


def _collect_parameters(schema: object, found: list[tuple[str, str]], *, depth: int) -> None:
    if not isinstance(schema, Mapping) or depth > 3:
        return
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, spec in properties.items():
            text = spec.get("description", "") if isinstance(spec, Mapping) else ""
            found.append((str(name), text if isinstance(text, str) else ""))
            _collect_parameters(spec, found, depth=depth + 1)
    items = schema.get("items")
    if isinstance(items, Mapping):
        _collect_parameters(items, found, depth=depth + 1)


def _stem(word: str) -> str:
    """A light suffix stripper: plural, -ing, -ed and a final e, so that "create", "creates",
    "creating" and "created" meet."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running -> run
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case word stems of ``text``: snake_case, kebab-case, dotted and camelCase names are
    split into words, stopwords dropped; CJK runs give single characters and bigrams.

    >>> tokenize("getWeatherForecast for the next_days")
    ['get', 'weather', 'forecast', 'next', 'day']
    """
    tokens: list[str] = []
    for run in _ALNUM.findall(text):
        if _CJK.match(run):
            tokens.extend(run)
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
            continue
        for part in _CAMEL.findall(run):
            word = part.lower()
            if word not in _STOPWORDS:
                tokens.append(_stem(word))
    return tokens


class BM25:
    """Okapi BM25 over tokenised documents (postings in numpy arrays).

    >>> BM25([["weather", "forecast"], ["stock", "price"]]).scores(["price"]).round(3).tolist()
    [0.0, 0.693]
    """

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75):
        self.size = len(documents)
        lengths = np.array([len(d) for d in documents], dtype=np.float64)
        average = float(lengths.mean()) if self.size and lengths.sum() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths / average)
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for index, document in enumerate(documents):
            for term, count in Counter(document).items():
                docs, weights = postings.setdefault(term, ([], []))
                docs.append(index)
                weights.append(count * (k1 + 1.0) / (count + norm[index]))
        self._postings: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = {}
        self._idf: dict[str, float] = {}
        for term, (docs, weights) in postings.items():
            frequency = len(docs)
            self._idf[term] = math.log(1.0 + (self.size - frequency + 0.5) / (frequency + 0.5))
            self._postings[term] = (np.array(docs, dtype=np.intp), np.array(weights))

    def idf(self, term: str) -> float:
        """The term's inverse document frequency (0 for a term no document has)."""
        return self._idf.get(term, 0.0)

    def scores(self, query: Sequence[str]) -> npt.NDArray[np.float64]:
        """BM25 of every document for the distinct terms of ``query``."""
        out = np.zeros(self.size, dtype=np.float64)
        for term in dict.fromkeys(query):
            found = self._postings.get(term)
            if found is not None:
                docs, weights = found
                out[docs] += self._idf[term] * weights
        return out

    def matches(self, query: Sequence[str]) -> FloatArray:
        """How many distinct terms of ``query`` each document contains."""
        out = np.zeros(self.size, dtype=np.float64)
        for term in dict.fromkeys(query):
            found = self._postings.get(term)
            if found is not None:
                out[found[0]] += 1.0
        return out


# --- steps ---------------------------------------------------------------------------------

# Where one step of a request ends and the next begins: sentence ends, semicolons, line breaks,
# sequencing words, ", and", and "and" before an imperative verb ("get the forecast and save
# it"). Other bare "and"s join parts of one ask ("pros and cons") and are left alone.
_NEXT_ASK_VERBS = (
    "add|analy[sz]e|book|build|buy|calculate|check|compare|convert|create|delete|describe|"
    "download|draw|email|explain|export|extract|fetch|find|generate|get|give|list|look|make|"
    "open|play|plot|post|put|read|recommend|remove|run|save|schedule|search|send|set|share|"
    "show|store|summari[sz]e|tell|translate|update|upload|use|write"
)
_STEP_BREAK = re.compile(
    r"(?:(?<=[.!?;])\s+|\s*\n\s*|\s+(?:and then|and also|then|after that|afterwards|finally)\s+"
    r"|,\s*(?:and\s+)?(?:then|finally|also|after that)\s+|,\s+and\s+"
    rf"|\s+and\s+(?=(?:{_NEXT_ASK_VERBS})\b))",
    re.IGNORECASE,
)
_LEADING_CONNECTIVE = re.compile(r"^(?:then|finally|also|next|afterwards|and)\b[,\s]*", re.I)
_MIN_STEP_CHARS = 12
_MAX_STEPS = 8
# Longer requests carry content (a pasted document, code) whose sentences are not steps.
MAX_SPLIT_CHARS = 1500


def split_steps(request: str) -> list[str]:
    """The steps of a multi-step request (empty when there is only one).

    >>> split_steps("Find the trending repos. Then, save a summary to /tmp/notes.md")
    ['Find the trending repos.', 'save a summary to /tmp/notes.md']
    """
    return split_parts(
        request,
        _STEP_BREAK,
        min_chars=_MIN_STEP_CHARS,
        max_parts=_MAX_STEPS,
        max_text_chars=MAX_SPLIT_CHARS,
        clean=lambda part: _LEADING_CONNECTIVE.sub("", part.strip()),
    )


# --- the index -----------------------------------------------------------------------------

DEFAULT_THRESHOLD = 0.33
"""Relevance below which no tool applies: fitted on BFCL multiple (0.329, the highest that
rejects at most 1% of right answers). On the held-out live splits it rejects 65% of
live_irrelevance and costs 4.5 points of live_multiple top-1 (benchmarks/tool_retrieval.py)."""


@dataclass(frozen=True, slots=True)
class RetrievalSettings:
    """How a :class:`ToolIndex` scores tools (defaults measured in benchmarks/tool_retrieval.py).

    ``lexical_weight``: weight of BM25 (scaled to the best match) next to the cosine.
    ``server_weight``: weight of the tool's server score, used from ``server_min_tools`` tools
    on at least two servers. ``argument_weight``: added to a tool with a required path (or URL)
    parameter when the request holds a file path (or a URL). ``split_steps``: also rank each
    step of a multi-step request (relevance always takes the best over the steps).
    ``encoder_reads_cjk``: embed Chinese, Japanese and Korean descriptions as they are (for a
    multilingual encoder; MiniLM gets the tool's names instead). ``threshold``: relevance below
    which no tool applies. ``max_chars``: longer requests keep their first and last halves.
    ``evidence``: a correction of relevance by how much of what a tool needs the request gives
    (:class:`~skillswitch.tools.evidence.EvidenceModel`, fitted by ``skillswitch fit tools``).
    """

    lexical_weight: float = 0.2
    server_weight: float = 0.5
    server_min_tools: int = 50
    argument_weight: float = 0.1
    split_steps: bool = False
    encoder_reads_cjk: bool = False
    threshold: float = DEFAULT_THRESHOLD
    max_chars: int = 4000
    evidence: EvidenceModel | None = None

    def __post_init__(self) -> None:
        for name in ("lexical_weight", "server_weight", "argument_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.server_min_tools < 1:
            raise ValueError(f"server_min_tools must be >= 1, got {self.server_min_tools!r}")
        if self.max_chars < 2:
            raise ValueError(f"max_chars must be >= 2, got {self.max_chars!r}")


@dataclass(frozen=True, slots=True)
class ToolHit:
    """One retrieved tool. ``score`` orders hits; ``relevance`` (cosine plus the share of the
    request's words the tool covers, plus the argument-evidence correction when the settings
    carry one) is what "no tool applies" compares with the threshold;
    ``step`` indexes :attr:`ToolSearch.texts` (0: the whole request) where the tool scored best.
    """

    entry: CatalogueEntry
    score: float
    relevance: float
    step: int

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def server(self) -> str:
        return self.entry.server


@dataclass(frozen=True, slots=True)
class ToolSearch:
    """The tools that fit a request, best first, and whether any applies at all.

    ``texts``: the request as scored, then each of its steps. ``relevance``: the best relevance
    of any tool (-1.0 in an empty catalogue).
    """

    texts: tuple[str, ...]
    hits: tuple[ToolHit, ...]
    relevance: float
    threshold: float

    @property
    def no_tool_applies(self) -> bool:
        return self.relevance < self.threshold

    @property
    def names(self) -> list[str]:
        return [hit.name for hit in self.hits]


class ToolIndex:
    """Hybrid (BM25 + dense) retrieval over catalogue tools; deterministic for a given encoder.

    >>> encoder = build_encoder(MiniLMEncoderConfig(), cache_root)  # doctest: +SKIP
    >>> index = ToolIndex(
    ...     [
    ...         CatalogueEntry("weather", "get_forecast", "Weather forecast for a city."),
    ...         CatalogueEntry("units", "convert_temperature", "Convert Celsius and Fahrenheit."),
    ...         CatalogueEntry("mail", "send_email", "Send an email."),
    ...     ],
    ...     encoder,
    ... )  # doctest: +SKIP
    >>> request = "what's the weather in Paris, then convert 20 C to F"
    >>> found = index.search(request, k=2)  # doctest: +SKIP
    >>> found.no_tool_applies, found.names  # doctest: +SKIP
    (False, ['convert_temperature', 'get_forecast'])
    >>> index.search("tell me a joke").no_tool_applies  # doctest: +SKIP
    True

    ``cache`` keeps the catalogue's embeddings across runs (requests are not cached).
    """

    def __init__(
        self,
        entries: Sequence[CatalogueEntry],
        encoder: Encoder,
        *,
        settings: RetrievalSettings | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.entries = tuple(entries)
        self.encoder = encoder
        self.settings = settings or RetrievalSettings()
        self._cache = cache
        documents = [_tool_tokens(entry) for entry in self.entries]
        self._lexical = BM25(documents)
        cjk = self.settings.encoder_reads_cjk
        self._vectors = self._encode_catalogue(
            [dense_tool_text(e, reads_cjk=cjk) for e in self.entries]
        )
        self._required = np.array(
            [required_parameters(entry.input_schema) for entry in self.entries], dtype=np.float64
        )
        self._takes = {
            kind: np.array([kind in _argument_kinds(e) for e in self.entries], dtype=np.float64)
            for kind in _ARGUMENT_VALUE
        }
        servers = list(dict.fromkeys(entry.server for entry in self.entries))
        self._use_servers = len(servers) > 1 and len(self.entries) >= self.settings.server_min_tools
        self._server_of = np.array([servers.index(e.server) for e in self.entries], dtype=np.intp)
        self._server_lexical: BM25 | None = None
        self._server_vectors: Embeddings | None = None
        if self._use_servers:
            context = {entry.server: entry.server_description for entry in self.entries}
            server_documents: list[list[str]] = [tokenize(f"{s} {context[s]}") for s in servers]
            for entry, document in zip(self.entries, documents, strict=True):
                server_documents[servers.index(entry.server)].extend(document)
            self._server_lexical = BM25(server_documents)
            self._server_vectors = self._encode_catalogue(
                [f"{_words(s)}: {_collapse(context[s])}".strip(" :") for s in servers]
            )

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, request: str, k: int = 10) -> ToolSearch:
        """The ``k`` best tools for ``request`` (fewer when the catalogue is smaller)."""
        return self.search_many([request], k)[0]

    def search_many(self, requests: Sequence[str], k: int = 10) -> list[ToolSearch]:
        """:meth:`search` for several requests, embedding all their texts in one batch."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        prepared = [self._texts(request) for request in requests]
        flat = [text for texts in prepared for text in texts]
        vectors = self.encoder.encode(flat) if flat and self.entries else None
        results: list[ToolSearch] = []
        offset = 0
        for texts in prepared:
            if vectors is None:
                results.append(ToolSearch(texts, (), -1.0, self.settings.threshold))
                continue
            results.append(self._rank(texts, vectors[offset : offset + len(texts)], k))
            offset += len(texts)
        return results

    def _texts(self, request: str) -> tuple[str, ...]:
        if not isinstance(request, str):
            raise RequestError(f"request must be text (str), got {type(request).__name__}")
        text = " ".join(request.split())
        if not text:
            raise RequestError("request is empty or only whitespace; send the text to match")
        limit = self.settings.max_chars
        if len(text) > limit:
            text = f"{text[: limit // 2]} … {text[-(limit // 2) :]}"
        return (text, *(" ".join(step.split()) for step in split_steps(request.strip())))

    def _rank(self, texts: tuple[str, ...], vectors: Embeddings, k: int) -> ToolSearch:
        settings = self.settings
        weight = settings.lexical_weight
        dense = vectors @ self._vectors.T  # (texts, tools)
        ranked = len(texts) if settings.split_steps else 1
        scores = np.empty((ranked, dense.shape[1]), dtype=np.float64)
        relevance = np.empty(dense.shape, dtype=np.float64)
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            covered = self._lexical.matches(tokens) / max(len(set(tokens)), 1)
            relevance[row] = dense[row] + weight * covered
            if row >= ranked:
                continue
            lexical = self._lexical.scores(tokens)
            scores[row] = dense[row] + weight * _scaled(lexical)
            if self._server_lexical is not None and self._server_vectors is not None:
                server = self._server_vectors @ vectors[row] + weight * _scaled(
                    self._server_lexical.scores(tokens)
                )
                scores[row] += settings.server_weight * server[self._server_of]
            if settings.argument_weight:
                for kind, takes in self._takes.items():
                    if _ARGUMENT_VALUE[kind].search(text):
                        scores[row] += settings.argument_weight * takes
        if settings.evidence is not None:
            # The whole request's measures on every text, as the correction was fitted: a
            # step's tool is judged by all that the request gives.
            relevance = settings.evidence.adjust(relevance, texts[0], self._required)
        best_step = np.argmax(scores, axis=0)
        best = scores[best_step, np.arange(scores.shape[1])]
        tool_relevance = relevance.max(axis=0)
        order = np.argsort(-best, kind="stable")[:k]
        hits = tuple(
            ToolHit(self.entries[j], float(best[j]), float(tool_relevance[j]), int(best_step[j]))
            for j in order
        )
        return ToolSearch(texts, hits, float(tool_relevance.max()), self.settings.threshold)

    def _encode_catalogue(self, texts: list[str]) -> Embeddings:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._cache is not None:
            return self._cache.encode(self.encoder, texts)
        return self.encoder.encode(texts)


def _scaled(scores: FloatArray) -> FloatArray:
    """Scores divided by their maximum (all zeros stay zeros)."""
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else scores


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _words(name: str) -> str:
    """``get_weatherForecast`` -> ``get weather Forecast``."""
    return " ".join(_CAMEL.findall(name)) or name


def dense_tool_text(entry: CatalogueEntry, *, reads_cjk: bool = True) -> str:
    """The text of a tool that the encoder embeds (``skillswitch fit tools`` trains on it)."""
    description = _collapse(entry.description)
    if reads_cjk or len(_CJK.findall(description)) <= _CJK_SHARE * len(description):
        return f"{_words(entry.name)}: {description}".strip(" :")
    # MiniLM embeds CJK text as near-noise: the names are the readable part of such a tool
    # (LiveMCPBench: 61 of 527 tools; cross-validated in benchmarks/tool_retrieval.py).
    latin = _collapse(_CJK_RUN.sub(" ", description))
    parameters = ", ".join(_words(name) for name, _ in entry.parameters())
    text = ": ".join(part for part in (_words(entry.server), _words(entry.name), latin) if part)
    return f"{text} ({parameters})" if parameters else text


# --- argument values in a request -----------------------------------------------------------

# A request that holds a value of some kind (a file path, a URL) asks for a tool that takes
# one: "save the summary to /root/notes.md" needs a tool with a required path parameter.
_FILE_EXTENSIONS = (
    "md|markdown|txt|pdf|docx?|pptx?|xlsx?|csv|tsv|json|ya?ml|xml|html?|png|jpe?g|gif|svg|"
    "webp|mp3|wav|mp4|zip|py|js|ts"
)
_ARGUMENT_VALUE: dict[str, re.Pattern[str]] = {
    "path": re.compile(
        r"(?<![\w/:.])(?:~|\.{1,2})?(?:/[\w.\-]+){2,}/?"  # /root/notes/x.md, ~/a/b
        r"|\b[A-Za-z]:\\[\w.\\\-]+"  # C:\Users\x.txt
        rf"|(?<![/\w.\-])[\w\-]+\.(?:{_FILE_EXTENSIONS})\b",  # report.pdf, not a URL's page
        re.IGNORECASE,
    ),
    "url": re.compile(r"\bhttps?://\S+|\bwww\.[\w\-]+\.\S+", re.IGNORECASE),
}
_ARGUMENT_NAME: dict[str, frozenset[str]] = {
    "path": frozenset(
        ["path", "paths", "file", "files", "filename", "filepath", "dir", "directory", "folder"]
    ),
    "url": frozenset({"url", "urls", "uri", "link", "href"}),
}


def _argument_kinds(entry: CatalogueEntry) -> frozenset[str]:
    """The kinds of value (path, url) that one of the tool's required parameters takes, by
    the words of its name: ``file_path``, ``outputPath``, ``targetUrl``."""
    schema = entry.input_schema
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if not isinstance(required, list):
        return frozenset()
    words = {
        part.lower() for name in required if isinstance(name, str) for part in _CAMEL.findall(name)
    }
    return frozenset(kind for kind, names in _ARGUMENT_NAME.items() if words & names)


def _tool_tokens(entry: CatalogueEntry) -> list[str]:
    # The name counts twice: it is the tool's most specific words.
    parameters = " ".join(f"{name} {text}" for name, text in entry.parameters())
    name = tokenize(entry.name)
    return [*name, *name, *tokenize(entry.description), *tokenize(parameters)]
