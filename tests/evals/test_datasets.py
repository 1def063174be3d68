from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillswitch.evals.datasets import check_labels, load_labelled
from skillswitch.exceptions import DatasetError


def test_csv_jsonl_and_pair_lists(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('text,category\n"hello, you",greet\nwhat is 2+2,math\n', encoding="utf-8")
    jsonl_file = tmp_path / "d.jsonl"
    jsonl_file.write_text(
        '{"text": "hi", "label": "greet"}\n\n{"text": "1+1", "label": "math"}\n', encoding="utf-8"
    )
    pairs_file = tmp_path / "d.json"
    pairs_file.write_text(
        json.dumps([["hi", "greet"], {"utterance": "2*3", "intent": "math"}]), encoding="utf-8"
    )
    assert load_labelled(csv_file, "train").texts == ("hello, you", "what is 2+2")
    assert load_labelled(jsonl_file, "train").labels == ("greet", "math")
    assert load_labelled(pairs_file, "test").texts == ("hi", "2*3")


def test_clinc_format_takes_the_split_and_its_oos_split(tmp_path: Path) -> None:
    file = tmp_path / "clinc.json"
    splits = {
        "train": [["a", "x"]],
        "oos_train": [["b", "oos"]],
        "val": [["c", "x"]],
        "oos_val": [["d", "oos"]],
        "test": [["e", "x"], ["f", "y"]],
        "oos_test": [["g", "oos"]],
    }
    file.write_text(json.dumps(splits), encoding="utf-8")
    assert load_labelled(file, "train").texts == ("a", "b")
    assert load_labelled(file, "val").texts == ("c", "d")
    assert load_labelled(file, "test").texts == ("e", "f", "g")


def test_real_clinc_file(clinc_file: Path) -> None:
    test = load_labelled(clinc_file, "test")
    assert len(test) == 4500 + 1000
    assert test.label_counts()["oos"] == 1000


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("d.csv", b"words,category\nhi,greet\n", "missing a text column"),
        ("d.csv", b"text,kind\nhi,greet\n", "missing a label column"),
        ("d.csv", b"text,label\n   ,greet\n", "d.csv:2: the text is empty"),
        ("d.csv", b"text,label\nhi\xff,greet\n", "not UTF-8 (byte 0xff on line 2)"),
        ("d.csv", b"", "empty CSV"),
        ("d.jsonl", b'{"text": "hi", "label": "a"}\n{broken\n', "d.jsonl:2: invalid JSON"),
        ("d.jsonl", b'["hi", "a"]\n', "must be an object"),
        ("d.json", b'{"train": []}', "must have a 'test' split"),
        ("d.txt", b"hi", "unknown format '.txt'"),
        ("d.jsonl", b"\n\n", "no labelled rows"),
    ],
)
def test_bad_files_get_clear_errors(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    file = tmp_path / name
    file.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        load_labelled(file, "test")
    assert fragment in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_labelled(tmp_path / "nope.csv", "train")


def test_unknown_labels_are_named_with_a_suggestion(tmp_path: Path) -> None:
    file = tmp_path / "t.jsonl"
    file.write_text(
        '{"text": "a", "label": "translat"}\n{"text": "b", "label": "oos"}\n', encoding="utf-8"
    )
    data = load_labelled(file, "test")
    with pytest.raises(DatasetError, match="'translat'; did you mean 'translate'"):
        check_labels(data, ["translate", "math"], out_of_scope_label="oos", against="training")
    check_labels(data, ["translat"], out_of_scope_label="oos", against="training")
