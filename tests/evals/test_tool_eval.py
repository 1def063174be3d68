"""Readers for LiveMCPBench and BFCL files, ranking metrics, threshold fitting, the evaluation
loop and ``skillswitch eval tools`` (small files written here; the real data when present)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skillswitch.evals.tools import (
    ToolEvalData,
    ToolQuery,
    detect_tool_format,
    evaluate_retrieval,
    fit_rejection_threshold,
    load_bfcl,
    load_livemcpbench,
    load_livemcpbench_catalogue,
    rejection_rate,
    score_rankings,
)
from skillswitch.exceptions import DatasetError
from skillswitch.router.encoders.base import Embeddings
from skillswitch.tools.retrieval import CatalogueEntry
from tests.conftest import SHARED_EVAL
from tests.support.cli import run

SERVERS = [
    {
        "name": "Weather Server",
        "description": "Forecasts and current conditions.",
        "tools": {
            "weather": {
                "server_name": "weather",
                "tools": [
                    {
                        "name": "get_forecast",
                        "description": "Weather forecast for a city.",
                        "inputSchema": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                    {"name": "get_alerts", "description": "Severe weather alerts for a state."},
                ],
            }
        },
    },
    {
        "name": "Files",
        "description": "Local files.",
        "tools": {"fs": {"tools": [{"name": "write_file", "description": "Write a text file."}]}},
    },
]
TASKS = [
    {
        "task_id": "t1",
        "Question": "Get the forecast for Paris and save it to a file.",
        "Annotator Metadata": {
            "Steps": "1. call get_forecast",
            "Tools": "1. get_forecast\n2. write_file\n3. not_a_tool",
        },
    },
    {
        "task_id": "t2",
        "Question": "Only unknown tools here.",
        "Annotator Metadata": {"Tools": "1. no_such_tool"},
    },
]


def _write_livemcpbench(folder: Path) -> tuple[Path, Path]:
    tools, tasks = folder / "tools.json", folder / "annotations.json"
    tools.write_text(json.dumps(SERVERS), encoding="utf-8")
    tasks.write_text(json.dumps(TASKS), encoding="utf-8")
    return tools, tasks


def _bfcl_record(identifier: str, question: str, *names: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "question": [
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
        ],
        "function": [
            {
                "name": name,
                "description": f"Does {name.replace('_', ' ')}.",
                "parameters": {"type": "dict", "properties": {"x": {"type": "string"}}},
            }
            for name in names
        ],
    }


def _write_bfcl(
    folder: Path, name: str, records: Sequence[dict[str, Any]], gold: dict[str, str] | None
) -> Path:
    file = folder / name
    file.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if gold is not None:
        (folder / "possible_answer").mkdir(exist_ok=True)
        (folder / "possible_answer" / name).write_text(
            "".join(
                json.dumps({"id": i, "ground_truth": [{g: {"x": ["1"]}}]}) + "\n"
                for i, g in gold.items()
            ),
            encoding="utf-8",
        )
    return file


class KeywordEncoder:
    """Deterministic fake: one dimension per keyword, so tests control the dense scores."""

    name = identity = "keywords"
    WORDS = ("weather", "forecast", "file", "alert", "stock")

    def encode(self, texts: Sequence[str]) -> Embeddings:
        rows = np.array(
            [[float(w in t.lower()) for w in self.WORDS] + [0.1] for t in texts], dtype=np.float32
        )
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --- LiveMCPBench --------------------------------------------------------------------------


def test_livemcpbench_catalogue_and_tasks(tmp_path: Path) -> None:
    tools, tasks = _write_livemcpbench(tmp_path)
    data = load_livemcpbench(tools, tasks)
    assert [(e.server, e.name) for e in data.catalogue] == [
        ("weather", "get_forecast"),
        ("weather", "get_alerts"),
        ("fs", "write_file"),
    ]
    assert (
        data.catalogue[0].server_description == "Weather Server Forecasts and current conditions."
    )
    assert data.catalogue[0].parameters() == [("city", "")]
    # Task t2 names no catalogue tool and is skipped; t1's unknown name is counted and dropped.
    assert [(q.id, q.text, q.gold) for q in data.queries] == [
        ("t1", "Get the forecast for Paris and save it to a file.", ("get_forecast", "write_file"))
    ]
    assert data.gold_not_in_catalogue == 2
    assert data.queries[0].candidates is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "x"}', "expected a list of MCP servers"),
        ("[{}]", "server #0 has no 'tools' mapping"),
        (
            '[{"tools": {"k": {"tools": [{"description": "no name"}]}}}]',
            "tool #0 has no string 'name'",
        ),
        ('[{"tools": {}}]', "the catalogue has no tools"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_malformed_catalogue_names_file_and_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    file = tmp_path / "tools.json"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as caught:
        load_livemcpbench_catalogue(file)
    assert str(file) in str(caught.value)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ({"Question": "q"}, "expected a list of annotated tasks"),
        ([{"Annotator Metadata": {"Tools": "1. a"}}], r"task #0 has no 'Question'"),
        (
            [{"Question": "q", "Annotator Metadata": {}}],
            r"task #0 has no 'Annotator Metadata.Tools'",
        ),
    ],
)
def test_malformed_annotations_name_file_and_problem(
    tmp_path: Path, tasks: Any, message: str
) -> None:
    tools, annotations = _write_livemcpbench(tmp_path)
    annotations.write_text(json.dumps(tasks), encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as caught:
        load_livemcpbench(tools, annotations)
    assert str(annotations) in str(caught.value)


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_livemcpbench_catalogue(tmp_path / "nope.json")


# --- BFCL ----------------------------------------------------------------------------------


def test_bfcl_questions_with_gold_from_possible_answer(tmp_path: Path) -> None:
    file = _write_bfcl(
        tmp_path,
        "BFCL_v4_multiple.json",
        [
            _bfcl_record("m_0", "Forecast for Rome?", "get_forecast", "get_stock"),
            _bfcl_record("m_1", "Stock?", "get_stock"),
        ],
        {"m_0": "get_forecast", "m_1": "get_stock"},
    )
    data = load_bfcl(file)
    assert [(q.id, q.text, q.gold) for q in data.queries] == [
        ("m_0", "Forecast for Rome?", ("get_forecast",)),
        ("m_1", "Stock?", ("get_stock",)),
    ]
    first = data.queries[0].candidates
    assert first is not None
    assert [c.name for c in first] == ["get_forecast", "get_stock"]
    assert first[0].parameters() == [("x", "")]
    assert data.catalogue == ()


def test_bfcl_irrelevance_has_no_gold_and_needs_no_answers(tmp_path: Path) -> None:
    file = _write_bfcl(
        tmp_path, "BFCL_v4_irrelevance.json", [_bfcl_record("i_0", "Sing", "get_stock")], None
    )
    data = load_bfcl(file)
    assert data.queries[0].gold == ()


def test_bfcl_errors_name_file_and_problem(tmp_path: Path) -> None:
    file = _write_bfcl(tmp_path, "BFCL_v4_multiple.json", [_bfcl_record("m_0", "q", "f")], None)
    with pytest.raises(DatasetError, match="possible_answer"):
        load_bfcl(file)
    _write_bfcl(tmp_path, "BFCL_v4_multiple.json", [_bfcl_record("m_0", "q", "f")], {"other": "f"})
    with pytest.raises(DatasetError, match="'m_0' has no gold call"):
        load_bfcl(file)
    file.write_text('{"id": "m_0", "question": [[]], "function": []}\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"BFCL_v4_multiple.json:2: not a JSON object per line"):
        load_bfcl(file)
    file.write_text('{"id": "m_0", "question": [[]], "function": []}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r":1: the conversation has no user turn"):
        load_bfcl(file)


def test_detect_tool_format(tmp_path: Path) -> None:
    tools, tasks = _write_livemcpbench(tmp_path)
    bfcl = _write_bfcl(tmp_path, "BFCL_v4_irrelevance.json", [_bfcl_record("i_0", "q", "f")], None)
    assert detect_tool_format(tools) == "livemcpbench"
    assert detect_tool_format(tasks) == "livemcpbench"
    assert detect_tool_format(bfcl) == "bfcl"
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "hi", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="not a known tool-retrieval format"):
        detect_tool_format(other)


# --- metrics -------------------------------------------------------------------------------


def test_score_rankings_by_hand() -> None:
    scores = score_rankings(
        [["a", "x", "b"], ["x", "y", "c"], ["d"]],
        [{"a", "b"}, {"c", "z"}, {"q"}],
        ks=(1, 2, 3),
        rejected=[True, False, False],
    )
    assert scores.recall == pytest.approx({1: 0.5 / 3, 2: 0.5 / 3, 3: (1 + 0.5 + 0) / 3})
    assert scores.hit == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 2 / 3})
    assert scores.mrr == pytest.approx((1 + 1 / 3) / 3)
    assert scores.top1 == pytest.approx(1 / 3)
    assert scores.top1_accepted == 0.0  # the one right top-1 was rejected
    assert scores.to_dict()["recall"]["3"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one gold tool"):
        score_rankings([["a"]], [set()])
    assert rejection_rate([True, False, True, True]) == 0.75


def test_fit_rejection_threshold_keeps_the_loss_budget() -> None:
    relevance = [0.9, 0.2, 0.5, 0.3, 0.8, 0.1]
    correct = [True, True, True, True, True, False]
    assert fit_rejection_threshold(relevance, correct, max_loss=0.0) == 0.2
    cut = fit_rejection_threshold(relevance, correct, max_loss=2 / 6)  # two right ones may go
    assert cut == 0.5
    assert sum(r < cut and c for r, c in zip(relevance, correct, strict=True)) == 2
    with pytest.raises(ValueError, match="max_loss"):
        fit_rejection_threshold(relevance, correct, max_loss=1.5)


def test_evaluate_retrieval_on_shared_and_per_query_catalogues() -> None:
    catalogue = (
        CatalogueEntry("w", "get_forecast", "weather forecast"),
        CatalogueEntry("f", "write_file", "write a file"),
    )
    shared = ToolEvalData(
        (
            ToolQuery("1", "weather forecast please", ("get_forecast",)),
            ToolQuery("2", "a file", ("write_file",)),
        ),
        catalogue,
        "shared",
    )
    report = evaluate_retrieval(shared, KeywordEncoder(), k=1)
    assert report.ranking is not None
    assert report.ranking.top1 == 1.0
    assert report.rejection is None
    assert report.top1_correct == (True, True)
    own = ToolEvalData(
        (
            ToolQuery(
                "a",
                "stock alert",
                ("get_alerts",),
                (CatalogueEntry("", "get_alerts", "weather alert"), *catalogue),
            ),
            ToolQuery("b", "zzz", (), (CatalogueEntry("", "get_forecast", "weather forecast"),)),
            ToolQuery("c", "anything", (), ()),
        ),
        (),
        "own",
    )
    report = evaluate_retrieval(own, KeywordEncoder(), k=3)
    assert report.ranking is not None
    assert report.ranking.queries == 1
    assert report.ranking.top1 == 1.0
    assert report.rejection == 1.0  # "zzz" matches nothing; "anything" has no candidate
    assert report.to_dict()["rejection"] == 1.0


# --- the command line ----------------------------------------------------------------------


def test_cli_eval_tools_livemcpbench(cli_env: dict[str, str], tmp_path: Path) -> None:
    tools, tasks = _write_livemcpbench(tmp_path)
    out = tmp_path / "report.json"
    completed = run(
        [
            "eval",
            "tools",
            "--catalog",
            str(tools),
            "--queries",
            str(tasks),
            "--k",
            "3",
            "--json",
            str(out),
        ],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "recall@3" in completed.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["queries"] == 1
    assert report["ranking"]["recall"]["3"] == 1.0


def test_cli_eval_tools_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    tools, tasks = _write_livemcpbench(tmp_path)
    bfcl = _write_bfcl(tmp_path, "BFCL_v4_irrelevance.json", [_bfcl_record("i_0", "q", "f")], None)
    completed = run(["eval", "tools", "--catalog", str(tools), "--queries", str(bfcl)], cli_env)
    assert completed.returncode == 2
    assert "leave out --catalog" in completed.stderr
    completed = run(["eval", "tools", "--queries", str(tasks)], cli_env)
    assert completed.returncode == 2
    assert "--catalog" in completed.stderr


# --- the real data -------------------------------------------------------------------------


def test_real_livemcpbench_and_bfcl_files_load() -> None:
    folder = SHARED_EVAL
    if not (folder / "livemcpbench" / "tools.json").is_file() or not (folder / "bfcl").is_dir():
        pytest.skip("../shared/eval/livemcpbench or bfcl is not present")
    data = load_livemcpbench(
        folder / "livemcpbench" / "tools.json", folder / "livemcpbench" / "all_annotations.json"
    )
    assert (len(data.catalogue), len(data), data.gold_not_in_catalogue) == (527, 94, 5)
    assert len({e.server for e in data.catalogue}) == 70
    assert sum(len(q.gold) for q in data.queries) == 251
    sizes = {
        split: len(load_bfcl(folder / "bfcl" / f"BFCL_v4_{split}.json"))
        for split in ("multiple", "live_multiple", "irrelevance", "live_irrelevance")
    }
    assert sizes == {
        "multiple": 200,
        "live_multiple": 1053,
        "irrelevance": 240,
        "live_irrelevance": 884,
    }
    live = load_bfcl(folder / "bfcl" / "BFCL_v4_live_multiple.json")
    assert max(len(q.candidates or ()) for q in live.queries) == 37
    assert all(q.gold[0] in {c.name for c in q.candidates or ()} for q in live.queries)
