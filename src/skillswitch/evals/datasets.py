"""Labelled request data for ``fit`` and ``eval``: CSV, JSONL, and the CLINC150 JSON format."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from skillswitch.config.models import did_you_mean
from skillswitch.exceptions import DatasetError
from skillswitch.textio import jsonl_lines, read_data_file

__all__ = ["LabelledData", "Split", "check_labels", "load_labelled"]

Split = Literal["train", "val", "test"]

TEXT_COLUMNS = ("text", "utterance", "query", "sentence")
LABEL_COLUMNS = ("label", "intent", "category", "skill")
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class LabelledData:
    """Parallel texts and labels read from ``source``."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> Counter[str]:
        return Counter(self.labels)


def load_labelled(path: str | Path, split: Split) -> LabelledData:
    """Read ``path`` as labelled data for ``split``.

    CSV and JSONL need a text column (``text``, ``utterance``, ``query`` or ``sentence``) and
    a label column (``label``, ``intent``, ``category`` or ``skill``). A ``.json`` file is
    either a list of ``[text, label]`` pairs / objects, or the CLINC150 format: a mapping of
    splits, from which ``split`` takes its own split and the matching ``oos_`` split.
    """
    file = Path(path)
    text = read_data_file(file, what="data file", formats="a .csv, .jsonl or .json file")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(text, file)
    elif suffix in {".jsonl", ".ndjson"}:
        rows = _read_jsonl(text, file)
    elif suffix == ".json":
        rows = _read_json(text, file, split)
    else:
        raise DatasetError(
            f"{file}: unknown format {suffix or '(no extension)'!r}; use .csv or .jsonl with "
            "text,label columns, or .json (CLINC150 format)"
        )
    if not rows:
        raise DatasetError(f"{file}: no labelled rows found")
    texts, labels = zip(*rows, strict=True)
    return LabelledData(tuple(texts), tuple(labels), str(file))


def check_labels(
    data: LabelledData, known: Sequence[str], *, out_of_scope_label: str, against: str
) -> None:
    """Every label of ``data`` must be a known label or the out-of-scope label."""
    allowed = set(known) | {out_of_scope_label}
    unknown = sorted({label for label in data.labels if label not in allowed})
    if unknown:
        sample = ", ".join(f"{label!r}{did_you_mean(label, list(known))}" for label in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DatasetError(
            f"{data.source}: {len(unknown)} label(s) not in {against}: {sample}{more}. "
            f"Out-of-scope items must be labelled {out_of_scope_label!r} (see --oos-label)"
        )


def _clean(text: object, label: object, where: str) -> tuple[str, str]:
    if not isinstance(text, str) or not isinstance(label, (str, int)):
        raise DatasetError(
            f"{where}: expected a text string and a label, got {type(text).__name__} and "
            f"{type(label).__name__}"
        )
    stripped = text.strip()
    if not stripped:
        raise DatasetError(f"{where}: the text is empty; remove the row or fill it in")
    if len(stripped) > MAX_TEXT_CHARS:
        raise DatasetError(
            f"{where}: the text has {len(stripped)} characters (max {MAX_TEXT_CHARS})"
        )
    label_text = str(label).strip()
    if not label_text:
        raise DatasetError(f"{where}: the label is empty")
    return stripped, label_text


def _columns(fields: Sequence[str], where: str) -> tuple[str, str]:
    lowered = {f.strip().lower(): f for f in fields}
    text = next((lowered[c] for c in TEXT_COLUMNS if c in lowered), None)
    label = next((lowered[c] for c in LABEL_COLUMNS if c in lowered), None)
    if text is None or label is None:
        missing = "a text column" if text is None else "a label column"
        options = TEXT_COLUMNS if text is None else LABEL_COLUMNS
        raise DatasetError(
            f"{where}: missing {missing} (one of {', '.join(options)}); found columns "
            f"{list(fields)}"
        )
    return text, label


def _read_csv(text: str, file: Path) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise DatasetError(f"{file}: empty CSV; the first line must name the columns")
    text_column, label_column = _columns(reader.fieldnames, str(file))
    rows = []
    for row in reader:
        where = f"{file}:{reader.line_num}"
        rows.append(_clean(row.get(text_column), row.get(label_column), where))
    return rows


def _read_jsonl(text: str, file: Path) -> list[tuple[str, str]]:
    rows = []
    columns: tuple[str, str] | None = None
    for number, line in jsonl_lines(text):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: each line must be an object with text and label")
        columns = columns or _columns(list(item), where)
        rows.append(_clean(item.get(columns[0]), item.get(columns[1]), where))
    return rows


def _read_json(text: str, file: Path, split: Split) -> list[tuple[str, str]]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        if split not in data:
            raise DatasetError(
                f"{file}: a split file given as {split} data must have a {split!r} split; "
                f"it has {sorted(data)}"
            )
        items: list[Any] = list(data[split]) + list(data.get(f"oos_{split}", []))
        name = f"{file}[{split}+oos_{split}]"
    elif isinstance(data, list):
        items, name = data, str(file)
    else:
        raise DatasetError(f"{file}: expected a list of [text, label] pairs or a split mapping")
    rows = []
    columns: tuple[str, str] | None = None
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if isinstance(item, (list, tuple)) and len(item) == 2:
            rows.append(_clean(item[0], item[1], where))
        elif isinstance(item, dict):
            columns = columns or _columns(list(item), where)
            rows.append(_clean(item.get(columns[0]), item.get(columns[1]), where))
        else:
            raise DatasetError(f"{where}: expected [text, label] or an object, got {item!r:.80}")
    return rows
