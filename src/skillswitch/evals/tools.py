"""Tool-retrieval evaluation: readers for LiveMCPBench and BFCL, and ranking metrics.

Formats read (unmodified public files):

- LiveMCPBench ``tools.json``: a list of servers, each ``{"name", "description", "tools":
  {key: {"tools": [{"name", "description", "inputSchema"}]}}}``; its annotations file
  (``all_annotations.json``): a list of tasks with ``Question`` and ``Annotator Metadata.Tools``,
  a numbered list of gold tool names, one per line. Only ``Question`` is used as the query.
- BFCL v4 question files (JSON Lines): ``{"id", "question": [[{"role", "content"}...]],
  "function": [{"name", "description", "parameters"}]}``, each query with its own candidates;
  the gold call of ``X.json`` is in ``possible_answer/X.json`` (``{"id", "ground_truth":
  [{name: arguments}]}``). In ``*irrelevance*`` files no candidate applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skillswitch.config.models import did_you_mean
from skillswitch.exceptions import DatasetError
from skillswitch.router.encoders.base import Encoder
from skillswitch.router.encoders.cache import EmbeddingCache
from skillswitch.textio import jsonl_lines, read_data_file
from skillswitch.tools.retrieval import CatalogueEntry, RetrievalSettings, ToolIndex, ToolSearch

__all__ = [
    "RankingScores",
    "ToolEvalData",
    "ToolEvalReport",
    "ToolQuery",
    "detect_tool_format",
    "evaluate_retrieval",
    "fit_rejection_threshold",
    "load_bfcl",
    "load_catalogue",
    "load_labelled_requests",
    "load_livemcpbench",
    "load_livemcpbench_catalogue",
    "load_tool_queries",
    "public_name",
    "rejection_rate",
    "score_rankings",
    "search_queries",
]

ToolFormat = Literal["livemcpbench", "bfcl", "requests"]

_NUMBERED = re.compile(r"^\s*\d+\s*[.)]\s*")


@dataclass(frozen=True, slots=True)
class ToolQuery:
    """One request and the names of the tools that serve it (empty: no tool applies).

    ``candidates`` is the query's own catalogue (BFCL) or ``None`` (the shared catalogue)."""

    id: str
    text: str
    gold: tuple[str, ...]
    candidates: tuple[CatalogueEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class ToolEvalData:
    """Queries with a shared catalogue (LiveMCPBench) or per-query candidates (BFCL)."""

    queries: tuple[ToolQuery, ...]
    catalogue: tuple[CatalogueEntry, ...]
    source: str
    gold_not_in_catalogue: int = 0
    """Gold names (LiveMCPBench) that no catalogue tool has; dropped from ``gold``."""
    public_names: bool = False
    """Gold names are ``server__tool`` (labelled requests, :func:`load_labelled_requests`):
    rankings are scored by those names too."""

    def names(self, entries: Sequence[CatalogueEntry]) -> list[str]:
        """The names ``entries`` are scored by (the gold's kind of name)."""
        if self.public_names:
            return [public_name(entry) for entry in entries]
        return [entry.name for entry in entries]

    def __len__(self) -> int:
        return len(self.queries)


# --- LiveMCPBench --------------------------------------------------------------------------


def load_livemcpbench_catalogue(path: str | Path) -> tuple[CatalogueEntry, ...]:
    """Every tool of a LiveMCPBench ``tools.json``, in file order."""
    file = Path(path)
    data = _json(file, "catalogue file")
    if not isinstance(data, list):
        raise DatasetError(
            f"{file}: expected a list of MCP servers (LiveMCPBench tools.json), "
            f"got {type(data).__name__}"
        )
    entries: list[CatalogueEntry] = []
    for position, server in enumerate(data):
        where = f"{file}: server #{position}"
        if not isinstance(server, Mapping) or not isinstance(server.get("tools"), Mapping):
            raise DatasetError(f"{where} has no 'tools' mapping (server key -> tool list)")
        context = " ".join(
            str(server[key]) for key in ("name", "description") if isinstance(server.get(key), str)
        )
        for key, block in server["tools"].items():
            tools = block.get("tools") if isinstance(block, Mapping) else None
            if not isinstance(tools, list):
                raise DatasetError(f"{where}, {key!r}: 'tools' must be a list of tools")
            for number, tool in enumerate(tools):
                if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                    raise DatasetError(f"{where}, {key!r}: tool #{number} has no string 'name'")
                schema = tool.get("inputSchema")
                entries.append(
                    CatalogueEntry(
                        server=str(block.get("server_name") or key),
                        name=tool["name"],
                        description=str(tool.get("description") or ""),
                        input_schema=schema if isinstance(schema, Mapping) else {},
                        server_description=context,
                    )
                )
    if not entries:
        raise DatasetError(f"{file}: the catalogue has no tools")
    return tuple(entries)


def load_livemcpbench(catalogue: str | Path, annotations: str | Path) -> ToolEvalData:
    """LiveMCPBench tasks (``Question`` only) with their gold tools, over ``catalogue``.

    Gold names the catalogue lacks are dropped (counted in ``gold_not_in_catalogue``); tasks left
    with no gold tool are skipped.
    """
    entries = load_livemcpbench_catalogue(catalogue)
    known = {entry.name for entry in entries}
    file = Path(annotations)
    data = _json(file, "annotations file")
    if not isinstance(data, list):
        raise DatasetError(f"{file}: expected a list of annotated tasks, got {type(data).__name__}")
    queries: list[ToolQuery] = []
    missing = 0
    for position, task in enumerate(data):
        where = f"{file}: task #{position}"
        if not isinstance(task, Mapping):
            raise DatasetError(f"{where} is not an object")
        question = task.get("Question")
        metadata = task.get("Annotator Metadata")
        tools = metadata.get("Tools") if isinstance(metadata, Mapping) else None
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{where} has no 'Question' text")
        if not isinstance(tools, str):
            raise DatasetError(f"{where} has no 'Annotator Metadata.Tools' list")
        names = [_NUMBERED.sub("", line).strip() for line in tools.splitlines()]
        gold = tuple(dict.fromkeys(name for name in names if name))
        kept = tuple(name for name in gold if name in known)
        missing += len(gold) - len(kept)
        if kept:
            queries.append(ToolQuery(str(task.get("task_id", position)), question.strip(), kept))
    if not queries:
        raise DatasetError(f"{file}: no task names a tool of {catalogue}")
    return ToolEvalData(tuple(queries), entries, str(file), gold_not_in_catalogue=missing)


# --- labelled requests (a deployment's own) ------------------------------------------------


def public_name(entry: CatalogueEntry) -> str:
    """``server__tool``, the name skillswitch publishes an MCP tool under."""
    return f"{entry.server}__{entry.name}"


def load_catalogue(path: str | Path) -> tuple[CatalogueEntry, ...]:
    """A LiveMCPBench ``tools.json``, or what ``skillswitch tools list --json`` prints (the
    configured servers' tools: ``{"tools": [{"server", "tool", "description", "input_schema"}]}``).
    """
    file = Path(path)
    data = _json(file, "catalogue file")
    if isinstance(data, list):
        return load_livemcpbench_catalogue(file)
    tools = data.get("tools") if isinstance(data, Mapping) else None
    if not isinstance(tools, list):
        raise DatasetError(
            f"{file}: not a tool catalogue; give `skillswitch tools list --json` output (an "
            "object with 'tools') or a LiveMCPBench tools.json (a list of servers)"
        )
    entries = []
    for number, tool in enumerate(tools):
        if not (
            isinstance(tool, Mapping)
            and isinstance(tool.get("server"), str)
            and isinstance(tool.get("tool"), str)
        ):
            raise DatasetError(f"{file}: tools[{number}] needs string 'server' and 'tool'")
        schema = tool.get("input_schema")
        entries.append(
            CatalogueEntry(
                server=tool["server"],
                name=tool["tool"],
                description=str(tool.get("description") or ""),
                input_schema=schema if isinstance(schema, Mapping) else {},
            )
        )
    if not entries:
        raise DatasetError(f"{file}: the catalogue has no tools")
    return tuple(entries)


def load_labelled_requests(queries: str | Path, catalogue: str | Path) -> ToolEvalData:
    """JSON Lines ``{"request": text, "tools": ["server__tool", ...]}`` (an empty list: no
    tool applies) over ``catalogue`` (:func:`load_catalogue`): a deployment's own requests,
    labelled with the tools that served them."""
    entries = load_catalogue(catalogue)
    known = [public_name(entry) for entry in entries]
    known_set = set(known)
    file = Path(queries)
    loaded: list[ToolQuery] = []
    records = _jsonl_records(file, what="labelled requests file", formats="a JSON Lines file")
    for number, record in records:
        request, tools = record.get("request"), record.get("tools")
        where = f"{file}:{number}"
        if not isinstance(request, str) or not request.strip():
            raise DatasetError(f"{where}: 'request' must be non-empty text")
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise DatasetError(f"{where}: 'tools' must be a list of tool names (server__tool)")
        for name in tools:
            if name not in known_set:
                raise DatasetError(
                    f"{where}: tool {name!r} is not in {catalogue}{did_you_mean(name, known)}"
                )
        identifier = str(record.get("id", number))
        loaded.append(ToolQuery(identifier, request.strip(), tuple(dict.fromkeys(tools))))
    if not loaded:
        raise DatasetError(f"{file}: no labelled requests")
    return ToolEvalData(tuple(loaded), entries, str(file), public_names=True)


# --- BFCL ----------------------------------------------------------------------------------


def load_bfcl(path: str | Path, answers: str | Path | None = None) -> ToolEvalData:
    """A BFCL v4 question file; gold calls from ``answers`` (default: ``possible_answer/`` next
    to it). Queries of an ``irrelevance`` file have no gold tool: none should be called."""
    file = Path(path)
    irrelevance = "irrelevance" in file.name
    gold: dict[str, tuple[str, ...]] = {}
    if not irrelevance:
        answer_file = Path(answers) if answers is not None else _answers_next_to(file)
        gold = _bfcl_answers(answer_file)
    queries: list[ToolQuery] = []
    for number, record in _jsonl_records(file):
        where = f"{file}:{number}"
        identifier = record.get("id")
        if not isinstance(identifier, str):
            raise DatasetError(f"{where}: no string 'id'")
        functions = record.get("function")
        if not isinstance(functions, list):
            raise DatasetError(f"{where}: 'function' must be a list of function definitions")
        candidates = tuple(
            _bfcl_function(f, f"{where}: function #{i}") for i, f in enumerate(functions)
        )
        text = _bfcl_question(record.get("question"), where)
        if irrelevance:
            queries.append(ToolQuery(identifier, text, (), candidates))
            continue
        if identifier not in gold:
            raise DatasetError(f"{where}: id {identifier!r} has no gold call in the answers file")
        queries.append(ToolQuery(identifier, text, gold[identifier], candidates))
    if not queries:
        raise DatasetError(f"{file}: no queries")
    return ToolEvalData(tuple(queries), (), str(file))


def _answers_next_to(file: Path) -> Path:
    answer_file = file.parent / "possible_answer" / file.name
    if not answer_file.is_file():
        raise DatasetError(
            f"{file}: its gold calls are not at {str(answer_file)!r}; give the answers file "
            "(BFCL possible_answer/...) too"
        )
    return answer_file


def _bfcl_answers(file: Path) -> dict[str, tuple[str, ...]]:
    gold: dict[str, tuple[str, ...]] = {}
    for number, record in _jsonl_records(file):
        identifier = record.get("id")
        truth = record.get("ground_truth")
        if not isinstance(identifier, str) or not isinstance(truth, list) or not truth:
            raise DatasetError(f"{file}:{number}: expected {{'id': ..., 'ground_truth': [...]}}")
        names: list[str] = []
        for call in truth:
            if not isinstance(call, Mapping) or len(call) != 1:
                raise DatasetError(
                    f"{file}:{number}: each ground-truth call must be {{name: arguments}}"
                )
            names.extend(str(name) for name in call)
        gold[identifier] = tuple(dict.fromkeys(names))
    return gold


def _bfcl_function(function: object, where: str) -> CatalogueEntry:
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise DatasetError(f"{where} has no string 'name'")
    parameters = function.get("parameters")
    return CatalogueEntry(
        server="",
        name=function["name"],
        description=str(function.get("description") or ""),
        input_schema=parameters if isinstance(parameters, Mapping) else {},
    )


def _bfcl_question(question: object, where: str) -> str:
    """The user turns of the first conversation, joined (system and assistant turns left out)."""
    turns = question[0] if isinstance(question, list) and question else None
    if not isinstance(turns, list):
        raise DatasetError(f"{where}: 'question' must be a list of conversations (lists of turns)")
    said = [
        turn["content"].strip()
        for turn in turns
        if isinstance(turn, Mapping)
        and turn.get("role") == "user"
        and isinstance(turn.get("content"), str)
        and turn["content"].strip()
    ]
    if not said:
        raise DatasetError(f"{where}: the conversation has no user turn with text")
    return "\n".join(said)


# --- shared --------------------------------------------------------------------------------


def load_tool_queries(
    queries: str | Path, catalog: str | Path | None = None, answers: str | Path | None = None
) -> ToolEvalData:
    """Labelled tool queries in either format: LiveMCPBench annotations over ``catalog`` (its
    tools.json), or a BFCL file whose queries carry their own candidates (no ``catalog``)."""
    kind = detect_tool_format(queries)
    if kind == "requests":
        if catalog is None:
            raise DatasetError(
                f"{queries} holds labelled requests; give the catalogue their tools come from "
                "with --catalog (`skillswitch tools list --json > catalogue.json`)"
            )
        if answers is not None:
            raise DatasetError(f"--answers applies to BFCL files; {queries} holds requests")
        return load_labelled_requests(queries, catalog)
    if kind == "bfcl":
        if catalog is not None:
            raise DatasetError(
                f"{queries} is a BFCL file whose queries carry their own candidate functions; "
                "leave out --catalog"
            )
        return load_bfcl(queries, answers)
    if catalog is None:
        raise DatasetError(
            f"{queries} holds LiveMCPBench tasks; give the catalogue they search with "
            "--catalog (tools.json)"
        )
    if detect_tool_format(catalog) != "livemcpbench":
        raise DatasetError(f"--catalog {catalog} is not a LiveMCPBench tools.json")
    if answers is not None:
        raise DatasetError(f"--answers applies to BFCL files; {queries} holds LiveMCPBench tasks")
    return load_livemcpbench(catalog, queries)


def detect_tool_format(path: str | Path) -> ToolFormat:
    """``livemcpbench`` for a JSON list of servers with ``tools``; ``bfcl`` for JSON Lines
    records with ``question`` and ``function``; ``requests`` for JSON Lines records with
    ``request`` (and ``tools``)."""
    file = Path(path)
    text = read_data_file(file, what="tool data file", formats="a JSON or JSON Lines file")
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "livemcpbench"
    first = next((line for _, line in jsonl_lines(stripped) if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        record = None
    if isinstance(record, Mapping) and "question" in record and "function" in record:
        return "bfcl"
    if isinstance(record, Mapping) and "request" in record:
        return "requests"
    raise DatasetError(
        f"{file}: not a known tool-retrieval format; give a LiveMCPBench tools.json (a list of "
        "servers), a BFCL question file (JSON Lines with 'question' and 'function') or labelled "
        'requests (JSON Lines: {"request": text, "tools": ["server__tool", ...]})'
    )


def _json(file: Path, what: str) -> Any:
    text = read_data_file(file, what=what, formats="a JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None


def _jsonl_records(
    file: Path, *, what: str = "BFCL file", formats: str = "a BFCL .json (JSON Lines) file"
) -> list[tuple[int, Mapping[str, Any]]]:
    text = read_data_file(file, what=what, formats=formats)
    records: list[tuple[int, Mapping[str, Any]]] = []
    for number, line in jsonl_lines(text):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{file}:{number}: not a JSON object per line (JSON Lines): {exc.msg}"
            ) from None
        if not isinstance(record, Mapping):
            raise DatasetError(
                f"{file}:{number}: expected a JSON object, got {type(record).__name__}"
            )
        records.append((number, record))
    return records


# --- metrics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RankingScores:
    """Ranking quality over queries that have gold tools, by cut-off ``k``.

    ``recall[k]``: mean share of a query's gold tools in its top ``k``; ``hit[k]``: share of
    queries with at least one gold tool in the top ``k``; ``mrr``: mean reciprocal rank of the
    first gold tool (0 when none is ranked); ``top1``: the first tool is a gold one;
    ``top1_accepted``: that, and the query was not rejected as "no tool applies"."""

    queries: int
    recall: Mapping[int, float]
    hit: Mapping[int, float]
    mrr: float
    top1: float
    top1_accepted: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recall"] = {str(k): v for k, v in self.recall.items()}
        data["hit"] = {str(k): v for k, v in self.hit.items()}
        return data


def score_rankings(
    rankings: Sequence[Sequence[str]],
    gold: Sequence[Collection[str]],
    *,
    ks: Sequence[int] = (1, 5, 10),
    rejected: Sequence[bool] | None = None,
) -> RankingScores:
    """Score ranked tool names against gold names (queries without gold are an error)."""
    if len(rankings) != len(gold):
        raise ValueError(f"{len(rankings)} rankings but {len(gold)} gold sets")
    if rejected is not None and len(rejected) != len(gold):
        raise ValueError(f"{len(rejected)} rejection flags but {len(gold)} gold sets")
    if not gold:
        raise ValueError("no queries to score")
    if any(not g for g in gold):
        raise ValueError("every scored query needs at least one gold tool")
    recall = dict.fromkeys(ks, 0.0)
    hit = dict.fromkeys(ks, 0.0)
    mrr = top1 = top1_accepted = 0.0
    for position, (ranked, wanted) in enumerate(zip(rankings, gold, strict=True)):
        wanted_set = set(wanted)
        for k in ks:
            found = wanted_set.intersection(ranked[:k])
            recall[k] += len(found) / len(wanted_set)
            hit[k] += bool(found)
        first = next((r for r, name in enumerate(ranked, 1) if name in wanted_set), None)
        mrr += 1.0 / first if first is not None else 0.0
        if first == 1:
            top1 += 1
            top1_accepted += 0 if rejected is not None and rejected[position] else 1
    n = len(gold)
    return RankingScores(
        queries=n,
        recall={k: v / n for k, v in recall.items()},
        hit={k: v / n for k, v in hit.items()},
        mrr=mrr / n,
        top1=top1 / n,
        top1_accepted=top1_accepted / n,
    )


def rejection_rate(rejected: Sequence[bool]) -> float:
    """Share of "no tool applies" queries that were rejected."""
    if not rejected:
        raise ValueError("no queries to score")
    return float(np.mean(np.asarray(rejected, dtype=bool)))


def fit_rejection_threshold(
    relevance: Sequence[float], correct: Sequence[bool], *, max_loss: float = 0.01
) -> float:
    """The highest "no tool applies" threshold that rejects at most ``max_loss`` of the
    queries whose top tool is right (``relevance[i]``, ``correct[i]``: queries that need a tool).

    Raising the threshold only rejects more, so this is the most rejection that budget buys.
    """
    if len(relevance) != len(correct):
        raise ValueError(f"{len(relevance)} relevance scores but {len(correct)} flags")
    if not 0.0 <= max_loss < 1.0:
        raise ValueError(f"max_loss must be in [0, 1), got {max_loss!r}")
    right = np.sort(np.asarray(relevance, dtype=np.float64)[np.asarray(correct, dtype=bool)])
    if right.size == 0:
        raise ValueError("no query with a correct top tool to keep")
    allowed = int(np.floor(max_loss * len(correct) + 1e-9))  # correct queries we may reject
    if allowed >= right.size:
        return float(right[-1]) + 1e-6
    # Only scores strictly below the threshold are rejected: right[:allowed] go, right[allowed]
    # stays.
    return float(right[allowed])


@dataclass(frozen=True, slots=True)
class ToolEvalReport:
    """What :func:`evaluate_retrieval` measured on one data file.

    ``ranking``: over queries with gold tools (``None`` when there are none); ``rejection``: the
    share of "no tool applies" queries that were rejected (``None`` when there are none);
    ``evidence``: whether relevance was corrected by argument evidence."""

    source: str
    queries: int
    threshold: float
    ranking: RankingScores | None
    rejection: float | None
    relevance: tuple[float, ...]
    top1_correct: tuple[bool, ...]
    evidence: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "queries": self.queries,
            "threshold": self.threshold,
            "evidence": self.evidence,
            "ranking": self.ranking.to_dict() if self.ranking is not None else None,
            "rejection": self.rejection,
        }


def search_queries(
    data: ToolEvalData,
    encoder: Encoder,
    *,
    settings: RetrievalSettings | None = None,
    cache: EmbeddingCache | None = None,
) -> list[ToolSearch]:
    """Every query's whole ranking: over the shared catalogue (one index), or over the query's
    own candidates (one index each)."""
    settings = settings or RetrievalSettings()
    searches: list[ToolSearch] = []
    if any(query.candidates is None for query in data.queries):
        index = ToolIndex(data.catalogue, encoder, settings=settings, cache=cache)
        shared = iter(
            index.search_many(
                [q.text for q in data.queries if q.candidates is None], max(len(index), 1)
            )
        )
    for query in data.queries:
        if query.candidates is None:
            searches.append(next(shared))
        else:
            own = ToolIndex(query.candidates, encoder, settings=settings, cache=cache)
            searches.append(own.search(query.text, max(len(own), 1)))
    return searches


def evaluate_retrieval(
    data: ToolEvalData,
    encoder: Encoder,
    *,
    k: int = 10,
    settings: RetrievalSettings | None = None,
    cache: EmbeddingCache | None = None,
) -> ToolEvalReport:
    """Rank every query's tools with a :class:`ToolIndex` (one shared index, or one per query
    over its own candidates) and score the rankings and the "no tool applies" decisions."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    settings = settings or RetrievalSettings()
    searches = search_queries(data, encoder, settings=settings, cache=cache)
    with_gold = [i for i, q in enumerate(data.queries) if q.gold]
    without = [i for i, q in enumerate(data.queries) if not q.gold]
    ranking = None
    if with_gold:
        ranking = score_rankings(
            [data.names([hit.entry for hit in searches[i].hits]) for i in with_gold],
            [data.queries[i].gold for i in with_gold],
            ks=sorted({1, 5, k}),
            rejected=[searches[i].no_tool_applies for i in with_gold],
        )
    rejection = rejection_rate([searches[i].no_tool_applies for i in without]) if without else None
    return ToolEvalReport(
        source=data.source,
        queries=len(data.queries),
        threshold=settings.threshold,
        ranking=ranking,
        rejection=rejection,
        relevance=tuple(s.relevance for s in searches),
        top1_correct=tuple(
            bool(s.hits) and data.names([s.hits[0].entry])[0] in q.gold
            for s, q in zip(searches, data.queries, strict=True)
        ),
        evidence=settings.evidence is not None,
    )
