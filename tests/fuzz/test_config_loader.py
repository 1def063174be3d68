"""The config loader on text it was never meant to read: arbitrary YAML-ish text, generated YAML
documents, valid configs with one value replaced, removed or misnamed, character-level
mutations of the default config's file, and arbitrary bytes in a file. Each gives a ``Config``
or a ``ConfigError`` whose issues name the field (a YAML path, or the document and a
``file:line:column``), never another exception, and quickly (aliases and nesting bounded)."""

from __future__ import annotations

import copy
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from skillswitch.config import Config, load_config, parse_config
from skillswitch.exceptions import ConfigError
from tests.fuzz.profiles import fuzz_settings

pytestmark = pytest.mark.timeout(300)

MAX_SECONDS = 5.0  # per document; the default config takes ~30 ms
DEFAULT_TEXT = resources.files("skillswitch.config").joinpath("default.yaml").read_text("utf-8")
DEFAULT_DATA: dict[str, Any] = yaml.safe_load(DEFAULT_TEXT)


def check(text: str) -> ConfigError | None:
    """None when the text is a valid config, else its ConfigError; fails on anything else."""
    started = time.perf_counter()
    try:
        parse_config(text, source="fuzz.yaml")
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    elapsed = time.perf_counter() - started
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f} s for {text[:200]!r}"
    if error is not None:
        assert error.issues, "a ConfigError without issues"
        for issue in error.issues:
            assert issue.message.strip(), issue
    return error


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def related(issue_path: str, changed: str) -> bool:
    """The issue is at the changed field, inside it, or at a parent of it."""
    return (
        not issue_path
        or issue_path == changed
        or changed.startswith((issue_path + ".", issue_path + "["))
        or issue_path.startswith((changed + ".", changed + "["))
    )


# --- regressions --------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
REGRESSIONS = {
    "an alias inside itself": "a: &a [*a]",
    "a mapping inside itself": "x: &x {y: *x}",
    "a recursive skill": "skills: [&s {name: a, description: d, examples: [*s]}]",
    "a billion laughs": BOMB,
    "a bomb in a known field": BOMB + "skills: *i\n",
    "sequences nested 5000 deep": "[" * 5000,
    "mappings nested 3000 deep": "{a: " * 3000,
    "block sequences nested 3000 deep": "- " * 3000 + "x",
    "an integer key": "1: 2",
    "a null key": "null: 1",
    "a huge integer": "version: " + "9" * 5000,
    "a python tag": "!!python/object:os.system x",
    "a binary value": "version: !!binary aGVsbG8=",
    "two documents": "--- a\n--- b",
    "a lone surrogate": '"\\ud800": 1',
    "a date that is not one": "version: 2001-13-45",
    "a day out of range": "version: 2001-02-30 10:00:00",
    "an int tag on text": "version: !!int 99x",
    "a float tag on text": "version: !!float abc",
    "a timestamp tag on text": "version: !!timestamp x",
}


@pytest.mark.parametrize("text", REGRESSIONS.values(), ids=REGRESSIONS.keys())
def test_hostile_documents_get_a_config_error(text: str) -> None:
    assert check(text) is not None


def test_refusals_say_what_is_wrong_and_where() -> None:
    messages = {
        "a: &a [*a]": "fuzz.yaml:1:4: <document>: an alias refers to a node that contains it",
        BOMB: "aliases expand to more than 250000 values",
        "[" * 150 + "]" * 150: "fuzz.yaml:1:101: <document>: the document is nested too deeply",
        "[" * 5000: "nested too deeply (at most 100 levels)",
        "version: 2001-13-45": "fuzz.yaml:1:10: <document>: '2001-13-45' is not a valid YAML "
        "timestamp (month must be in 1..12); quote it if it is text",
        "version: " + "9" * 5000: "is not a valid YAML int (more than 4300 digits)",
    }
    for text, needle in messages.items():
        error = check(text)
        assert error is not None
        assert needle in str(error), str(error)


def test_a_tagged_union_field_is_named_where_it_is() -> None:
    """A tool expert has a key ``tool``, which is also pydantic's tag of its kind: an error in
    its skills was reported at ``experts[1].tool``."""
    text = DEFAULT_TEXT.replace(
        "tool: builtin__units, skills: [unit_conversion]", "tool: builtin__units, skills: 7"
    )
    error = check(text)
    assert error is not None
    assert [issue.path for issue in error.issues] == ["experts[1].skills"], str(error)


def test_aliases_within_bounds_still_load() -> None:
    """Anchors that a real config uses to share settings keep working."""
    text = DEFAULT_TEXT.replace(
        "experts:\n", "experts:\n  - &tool {name: calc2, kind: tool, tool: builtin__calculator}\n"
    )
    config = parse_config(text + "\n")
    assert isinstance(config, Config)


# --- generated ----------------------------------------------------------------------------------

YAML_CHARS = st.sampled_from([*":-{}[],&*!|>'\"#%@`?\n  \t.0123456789abcdeknorstuvxy_\\"])
YAML_ISH = st.one_of(
    st.text(YAML_CHARS, max_size=300),
    st.text(max_size=300),
)
FIELD_NAMES = sorted(
    {*DEFAULT_DATA}
    | {key for section in DEFAULT_DATA.values() if isinstance(section, dict) for key in section}
    | {"name", "description", "examples", "kind", "skills", "base_url", "model", "tool"}
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["auto", "minilm", "tool", "openai", "", " ", "1e999", "~", "-1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def paths(data: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


DEFAULT_PATHS = paths(DEFAULT_DATA)


def parent_of(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def kind(value: Any) -> str:
    return {bool: "bool", int: "number", float: "number"}.get(type(value), type(value).__name__)


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[str, str, str]:
    """(YAML text, the changed path, what was done) for the default config with one change."""
    data = copy.deepcopy(DEFAULT_DATA)
    path = draw(st.sampled_from(DEFAULT_PATHS))
    parent, key = parent_of(data, path), path[-1]
    how = draw(st.sampled_from(["retype", "remove", "rename", "add"]))
    if how == "retype":  # a value of another type: the error must be where it is
        old = kind(parent[key])
        parent[key] = draw(VALUES.filter(lambda value: kind(value) != old))
    elif how == "remove":
        del parent[key]
    elif how == "rename" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(FIELD_NAMES) | st.text(min_size=1, max_size=12))] = draw(VALUES)
    else:
        parent.append(draw(VALUES))
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False), dotted(path), how


@st.composite
def char_mutations(draw: st.DrawFn) -> str:
    """The default config's file with a few characters deleted, inserted or replaced."""
    text = DEFAULT_TEXT
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        size = draw(st.integers(0, 8))
        insert = draw(st.text(YAML_CHARS, max_size=8))
        text = text[:at] + insert + text[at + size :]
    return text


@given(YAML_ISH)
@example("")
@example("~")
@example("[]")
@fuzz_settings(examples=300, fuzz_examples=20_000)
def test_yaml_ish_text_gives_a_config_or_a_config_error(text: str) -> None:
    check(text)


@given(VALUES)
@fuzz_settings(examples=200, fuzz_examples=10_000)
def test_generated_documents_give_a_config_or_a_config_error(data: Any) -> None:
    check(yaml.safe_dump(data, allow_unicode=True))


@given(mutated_configs())
@fuzz_settings(examples=150, fuzz_examples=5_000)
def test_mutated_configs_name_the_changed_field(mutation: tuple[str, str, str]) -> None:
    text, changed, how = mutation
    error = check(text)
    if error is None or how != "retype":
        return
    assert any(related(issue.path, changed) for issue in error.issues), (changed, str(error))


@given(char_mutations())
@fuzz_settings(examples=150, fuzz_examples=5_000)
def test_mutated_files_give_a_config_or_a_config_error(text: str) -> None:
    check(text)


@given(st.binary(max_size=400))
@example(b"\xff\xfe")
@example(DEFAULT_TEXT.encode("utf-16"))
@fuzz_settings(examples=100, fuzz_examples=3_000)
def test_any_file_gives_a_config_or_a_config_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "config.yaml"
        file.write_bytes(content)
        try:
            load_config(file)
        except ConfigError as exc:
            error: ConfigError | None = exc
        else:
            error = None
    assert error is None or all(issue.message.strip() for issue in error.issues)
