"""Validation results of experts: who answered which question correctly (and with which answer).

The input of ``skillswitch fit profiles``. Two layouts are read:

- *wide CSV* (the MMLU-Pro layout): a ``question_id`` column, optional ``category`` / ``skill``
  columns, and one 0/1 column per expert (blank: the expert gave no output);
- *long JSONL*: one object per (question, expert) pair,
  ``{"question_id": .., "expert": .., "correct": 0|1, "answer": "B", "category": ..}``.

Optional companions: a wide CSV of the answers each expert gave (``--predictions``) and a
questions JSONL with ``question_id``, ``question`` text, ``answer`` and ``category``/``keywords``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skillswitch.exceptions import DatasetError
from skillswitch.textio import jsonl_lines, read_data_file

__all__ = ["Question", "ValidationResults", "load_validation"]

ID_COLUMNS = ("question_id", "id")
SKILL_COLUMNS = ("category", "skill")
_FORMATS = "a .csv or .jsonl file"
METADATA_COLUMNS = frozenset({"src", "source", "subject", "split", "question", "answer"})


@dataclass(frozen=True, slots=True)
class Question:
    """What is known about one validation question besides the experts' results."""

    text: str | None = None
    answer: str | None = None
    skill: str | None = None
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationResults:
    """Per-question results of every expert.

    ``correct[q, e]`` is 1.0 / 0.0, or NaN when expert ``e`` gave no output for question ``q``;
    ``answers[q][e]`` is the answer it gave ("" when unknown).
    """

    question_ids: tuple[str, ...]
    experts: tuple[str, ...]
    correct: np.ndarray
    skills: tuple[str | None, ...]
    answers: tuple[tuple[str, ...], ...] | None = None
    questions: Mapping[str, Question] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.question_ids)

    def texts(self) -> tuple[str | None, ...]:
        questions = self.questions or {}
        return tuple(questions[qid].text if qid in questions else None for qid in self.question_ids)

    def gold(self) -> tuple[str | None, ...]:
        questions = self.questions or {}
        return tuple(
            questions[qid].answer if qid in questions else None for qid in self.question_ids
        )

    def keywords(self) -> tuple[tuple[str, ...], ...]:
        questions = self.questions or {}
        return tuple(
            questions[qid].keywords if qid in questions else () for qid in self.question_ids
        )

    def with_skills(self, skills: Sequence[str | None]) -> ValidationResults:
        if len(skills) != len(self):
            raise ValueError(f"{len(skills)} skills for {len(self)} questions")
        return ValidationResults(
            self.question_ids,
            self.experts,
            self.correct,
            tuple(skills),
            self.answers,
            self.questions,
            self.source,
        )

    def subset(self, rows: Sequence[int] | np.ndarray) -> ValidationResults:
        """The results of the questions at ``rows`` (e.g. one half of a split)."""
        index = np.asarray(rows, dtype=np.int64)
        return ValidationResults(
            tuple(self.question_ids[i] for i in index),
            self.experts,
            self.correct[index],
            tuple(self.skills[i] for i in index),
            None if self.answers is None else tuple(self.answers[i] for i in index),
            self.questions,
            self.source,
        )


def load_validation(
    results: str | Path,
    *,
    predictions: str | Path | None = None,
    questions: str | Path | None = None,
) -> ValidationResults:
    """Read experts' validation results, optionally with their answers and the questions."""
    file = Path(results)
    text = read_data_file(file, what="results file", formats=_FORMATS)
    suffix = file.suffix.lower()
    if suffix == ".csv":
        ids, experts, correct, skills, answers = _wide_results(text, file)
    elif suffix in {".jsonl", ".ndjson"}:
        ids, experts, correct, skills, answers = _long_results(text, file)
    else:
        raise DatasetError(
            f"{file}: unknown format {suffix or '(no extension)'!r}; use a wide .csv "
            "(question_id, one 0/1 column per expert) or a .jsonl of "
            '{"question_id", "expert", "correct"} rows'
        )
    question_map = _read_questions(Path(questions)) if questions is not None else None
    if predictions is not None:
        answers = _wide_predictions(Path(predictions), ids, experts)
    if question_map is not None:
        skills = [
            skill if skill is not None else _question_skill(question_map, qid)
            for qid, skill in zip(ids, skills, strict=True)
        ]
        missing = [qid for qid in ids if qid not in question_map]
        if len(missing) == len(ids):
            raise DatasetError(
                f"{questions}: none of the {len(ids)} question ids of {file} appear in it "
                f"(first id: {ids[0]!r}); give the questions file of the same benchmark"
            )
    return ValidationResults(
        tuple(ids),
        tuple(experts),
        correct,
        tuple(skills),
        None if answers is None else tuple(tuple(row) for row in answers),
        question_map,
        str(file),
    )


def _question_skill(questions: Mapping[str, Question], qid: str) -> str | None:
    found = questions.get(qid)
    return None if found is None else found.skill


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {column.strip().lower(): column for column in columns}
    return next((lowered[name] for name in names if name in lowered), None)


def _wide_results(
    text: str, file: Path
) -> tuple[list[str], list[str], np.ndarray, list[str | None], None]:
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    id_column = _pick(columns, ID_COLUMNS)
    if id_column is None:
        raise DatasetError(
            f"{file}: no question id column; the header needs 'question_id' (found: "
            f"{', '.join(columns) or 'nothing'})"
        )
    skill_column = _pick(columns, SKILL_COLUMNS)
    skip = {id_column, skill_column} | {c for c in columns if c.strip().lower() in METADATA_COLUMNS}
    experts = [c for c in columns if c not in skip]
    if not experts:
        raise DatasetError(
            f"{file}: no expert columns; after {id_column!r} give one 0/1 column per expert"
        )
    ids: list[str] = []
    skills: list[str | None] = []
    values: list[list[float]] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        qid = (row.get(id_column) or "").strip()
        if not qid:
            raise DatasetError(f"{file}:{line}: empty {id_column!r}")
        if qid in seen:
            raise DatasetError(
                f"{file}:{line}: question id {qid!r} repeats line {seen[qid]}; ids must be unique"
            )
        seen[qid] = line
        ids.append(qid)
        skill = (row.get(skill_column) or "").strip() if skill_column else ""
        skills.append(skill or None)
        values.append([_score(row.get(expert), file, line, expert) for expert in experts])
    if not ids:
        raise DatasetError(f"{file}: no result rows after the header")
    return ids, experts, np.array(values, dtype=np.float64), skills, None


def _score(cell: str | None, file: Path, line: int, expert: str) -> float:
    value = (cell or "").strip().lower()
    if value == "":
        return math.nan
    if value in {"1", "1.0", "true"}:
        return 1.0
    if value in {"0", "0.0", "false"}:
        return 0.0
    raise DatasetError(
        f"{file}:{line}: column {expert!r}: {cell!r} is not a result; use 1 (correct), "
        "0 (wrong) or leave it blank (no output)"
    )


def _long_results(
    text: str, file: Path
) -> tuple[list[str], list[str], np.ndarray, list[str | None], list[list[str]] | None]:
    cells: dict[tuple[str, str], tuple[float, str]] = {}
    ids: dict[str, None] = {}
    experts: dict[str, None] = {}
    skills: dict[str, str | None] = {}
    for line, raw in jsonl_lines(text):
        if not raw.strip():
            continue
        record = _json_object(raw, file, line)
        qid = _field(record, ("question_id", "id"), file, line)
        expert = _field(record, ("expert", "model"), file, line)
        correct = record.get("correct")
        if correct not in (0, 1, True, False, None):
            raise DatasetError(
                f"{file}:{line}: 'correct' is {correct!r}; use 1, 0, or null (no output)"
            )
        if (qid, expert) in cells:
            raise DatasetError(f"{file}:{line}: a second result of {expert!r} on {qid!r}")
        score = math.nan if correct is None else float(correct)
        cells[qid, expert] = (score, str(record.get("answer") or ""))
        ids.setdefault(qid)
        experts.setdefault(expert)
        skill = record.get("category", record.get("skill"))
        if skill is not None:
            skills[qid] = str(skill)
        else:
            skills.setdefault(qid, None)
    if not cells:
        raise DatasetError(f"{file}: no result rows")
    id_list, expert_list = list(ids), list(experts)
    correct_matrix = np.full((len(id_list), len(expert_list)), math.nan)
    answers = [["" for _ in expert_list] for _ in id_list]
    row = {qid: i for i, qid in enumerate(id_list)}
    column = {expert: j for j, expert in enumerate(expert_list)}
    for (qid, expert), (score, answer) in cells.items():
        correct_matrix[row[qid], column[expert]] = score
        answers[row[qid]][column[expert]] = answer
    has_answers = any(a for row_answers in answers for a in row_answers)
    return (
        id_list,
        expert_list,
        correct_matrix,
        [skills[qid] for qid in id_list],
        answers if has_answers else None,
    )


def _json_object(raw: str, file: Path, line: int) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"{file}:{line}: invalid JSON ({exc.msg} at column {exc.colno})"
        raise DatasetError(message) from None
    if not isinstance(record, dict):
        raise DatasetError(f"{file}:{line}: expected a JSON object, got {type(record).__name__}")
    return record


def _field(record: Mapping[str, Any], names: Sequence[str], file: Path, line: int) -> str:
    for name in names:
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    raise DatasetError(f"{file}:{line}: missing {names[0]!r}")


def _wide_predictions(file: Path, ids: Sequence[str], experts: Sequence[str]) -> list[list[str]]:
    text = read_data_file(file, what="predictions file", formats=_FORMATS)
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    id_column = _pick(columns, ID_COLUMNS)
    if id_column is None:
        raise DatasetError(f"{file}: no question id column; the header needs 'question_id'")
    missing = [expert for expert in experts if expert not in columns]
    if missing:
        raise DatasetError(
            f"{file}: no answer column for expert(s) {', '.join(map(repr, missing[:5]))}; "
            "the predictions file needs the same expert columns as the results file"
        )
    by_id = {(row.get(id_column) or "").strip(): row for row in reader}
    absent = [qid for qid in ids if qid not in by_id]
    if absent:
        raise DatasetError(
            f"{file}: {len(absent)} question id(s) of the results are missing, e.g. "
            f"{absent[0]!r}; give the predictions of the same questions"
        )
    return [[(by_id[qid].get(expert) or "").strip() for expert in experts] for qid in ids]


def _read_questions(file: Path) -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for line, raw in jsonl_lines(read_data_file(file, what="questions file", formats=_FORMATS)):
        if not raw.strip():
            continue
        record = _json_object(raw, file, line)
        qid = _field(record, ("question_id", "id"), file, line)
        keywords = record.get("keywords") or []
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise DatasetError(f"{file}:{line}: 'keywords' must be a list of strings")
        text = record.get("question", record.get("text"))
        answer = record.get("answer")
        skill = record.get("category", record.get("skill"))
        questions[qid] = Question(
            None if text is None else str(text),
            None if answer is None else str(answer),
            None if skill is None else str(skill),
            tuple(k.strip().lower() for k in keywords if k.strip()),
        )
    if not questions:
        raise DatasetError(f"{file}: no questions")
    return questions
