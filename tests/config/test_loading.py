from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from skillswitch.config import (
    TrainedClassifierConfig,
    config_json_schema,
    default_config,
    environment,
    load_config,
    parse_config,
)
from skillswitch.exceptions import ConfigError

VALID_SKILL = "skills:\n  - name: math\n    description: sums\n    examples: [what is 2+2]\n"


def issues(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cfg.yaml")
    return [(issue.path, issue.message) for issue in caught.value.issues]


def test_embedded_default_has_at_least_ten_skills_with_examples() -> None:
    config = default_config()
    assert len(config.skills) >= 10
    assert all(len(skill.examples) >= 10 for skill in config.skills)
    assert len(config.out_of_scope.examples) >= 10
    names = {skill.name for skill in config.skills}
    assert {"math", "unit_conversion", "datetime", "coding", "translation"} <= names


def test_json_schema_accepts_the_default_and_rejects_unknown_keys() -> None:
    schema = config_json_schema()
    jsonschema.validate(default_config().model_dump(mode="json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"skillz": []}, schema)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (
            VALID_SKILL.replace("examples", "exampels"),
            "skills[0].exampels",
            "did you mean 'examples'",
        ),
        (VALID_SKILL.replace("name: math", "name: Math Stuff"), "skills[0].name", "'Math Stuff'"),
        (VALID_SKILL.replace("[what is 2+2]", "['  ']"), "skills[0].examples[0]", "empty or blank"),
        (VALID_SKILL.replace("[what is 2+2]", "3"), "skills[0].examples", "valid list"),
        (VALID_SKILL.replace("[what is 2+2]", "[]"), "skills[0].examples", "no examples"),
        ("skills: []\n", "skills", "at least one skill"),
        (VALID_SKILL + "router:\n  top_k: 0\n", "router.top_k", "greater than or equal to 1"),
        (VALID_SKILL + "router:\n  threshold: high\n", "router.threshold", "'auto'"),
        (
            VALID_SKILL + "router:\n  encoder: {runtime: onnxx}\n",
            "router.encoder.runtime",
            "'onnx' or 'torch'",
        ),
        (
            VALID_SKILL + "router:\n  encoder: {threds: 2}\n",
            "router.encoder.threds",
            "did you mean 'threads'",
        ),
        (
            VALID_SKILL + "router:\n  classifier: {kind: exemplr}\n",
            "router.classifier",
            "'exemplar', 'trained'",
        ),
        (
            VALID_SKILL + "router:\n  encoder: {kind: openai, model: m}\n",
            "router.encoder.base_url",
            "missing",
        ),
        (
            VALID_SKILL
            + "experts:\n  - {name: e, base_url: 'http://127.0.0.1:1/v1', model: m, skills: [maths]}\n",
            "experts[0].skills[0]",
            "did you mean 'math'",
        ),
        (VALID_SKILL + "router: {top_k: 2}\nrouter: {top_k: 3}\n", "router", "duplicate key"),
        (
            "skills:\n  - {name: a, description: d, examples: [x]}\n  - {name: a, description: d, examples: [y]}\n",
            "skills[1].name",
            "already declared at skills[0]",
        ),
        (VALID_SKILL + "out_of_scope: {label: math}\n", "out_of_scope.label", "also a skill name"),
        (
            VALID_SKILL + "tools:\n  servers:\n    - {name: t}\n",
            "tools.servers[0]",
            "exactly one of",
        ),
        ("- a\n- b\n", "", "must be a mapping"),
        (
            VALID_SKILL
            + "experts:\n  - {name: e, base_url: 'http://127.0.0.1:1/v1', model: m, timeout_s: .inf}\n",
            "experts[0].timeout_s",
            "finite number (got Infinity)",
        ),
        (VALID_SKILL + "dispatch: {deadline_s: .nan}\n", "dispatch.deadline_s", "finite number"),
        (  # a tool expert's key 'tool' is also pydantic's tag of its kind: named experts[0].tool
            VALID_SKILL + "experts:\n  - {name: c, kind: tool, tool: calculator, skills: 7}\n",
            "experts[0].skills",
            "valid list",
        ),
    ],
)
def test_bad_configs_name_the_yaml_path_and_the_fix(text: str, path: str, fragment: str) -> None:
    found = issues(text)
    assert any(p == path and fragment in m for p, m in found), found


def test_errors_carry_file_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(VALID_SKILL + "router:\n  top_k: 99\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert caught.value.issues[0].location == f"{file}:6:3"
    assert "router.top_k" in str(caught.value)


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("skills:\n  - name: a\n    examples: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    issue = caught.value.issues[0]
    assert "YAML syntax error" in issue.message
    assert issue.location is not None
    assert issue.location.startswith(f"{file}:")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), (b"\xff\xfe bad", "not UTF-8"), (b"", "at least one skill")],
)
def test_unreadable_files_give_config_errors(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    file = tmp_path / "config.yaml"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(ConfigError, match=fragment):
        load_config(file)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "config.yaml"
    file.parent.mkdir()
    file.write_text(
        "router:\n  classifier: {kind: trained, artifact: ../model}\n  cache_dir: cache\n",
        encoding="utf-8",
    )
    config = load_config(file)
    assert isinstance(config.router.classifier, TrainedClassifierConfig)
    assert config.router.classifier.artifact == file.parent / "../model"
    assert config.router.cache_dir == file.parent / "cache"


def test_missing_api_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKILLSWITCH_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SKILLSWITCH_TEST_KEY"):
        environment.api_key("SKILLSWITCH_TEST_KEY", path="router.encoder.api_key_env")
    monkeypatch.setenv("SKILLSWITCH_TEST_KEY", "sk-test")
    assert environment.api_key("SKILLSWITCH_TEST_KEY", path="x") == "sk-test"


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKILLSWITCH_CACHE_DIR", str(tmp_path / "a"))
    assert environment.cache_dir() == tmp_path / "a"
    assert environment.cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("SKILLSWITCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert environment.cache_dir() == tmp_path / "xdg" / "skillswitch"


def test_trained_classifier_rejects_a_second_encoder() -> None:
    found = issues(
        "router:\n  classifier: {kind: trained, artifact: x}\n  encoder: {runtime: torch}\n"
    )
    assert found == [("router.encoder", found[0][1])]
    assert "carries its own encoder" in found[0][1]
    parse_config("router:\n  classifier: {kind: trained, artifact: x}\n  encoder: {threads: 4}\n")


def test_int8_precision_needs_onnx_and_the_exemplar_classifier() -> None:
    trained = issues(
        "router:\n  classifier: {kind: trained, artifact: x}\n  encoder: {precision: int8}\n"
    )
    assert [path for path, _ in trained] == ["router.encoder.precision"]
    assert "fitted on float32" in trained[0][1]
    assert "set it to float32" in trained[0][1]
    torch = issues(VALID_SKILL + "router:\n  encoder: {runtime: torch, precision: int8}\n")
    assert [path for path, _ in torch] == ["router.encoder.precision"]
    assert "set runtime: onnx" in torch[0][1]
    for ok in (
        "router:\n  classifier: {kind: trained, artifact: x}\n  encoder: {precision: float32}\n",
        VALID_SKILL + "router:\n  encoder: {runtime: torch}\n",  # auto: float32 on torch
        VALID_SKILL + "router:\n  encoder: {precision: int8}\n",
    ):
        parse_config(ok)
    bad = issues(VALID_SKILL + "router:\n  encoder: {precision: fp16}\n")
    assert len(bad) == 1, bad
    assert bad[0][0].endswith("precision"), bad
    assert "'auto', 'float32' or 'int8'" in bad[0][1], bad


def test_the_readme_config_example_is_valid() -> None:
    from tests.conftest import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("```yaml\nversion: 1") + len("```yaml\n")
    config = parse_config(text[start : text.index("```\n", start)])
    assert config.dispatch.aggregator == "judge"


def test_duplicate_expert_names_are_reported() -> None:
    found = issues(
        VALID_SKILL
        + "experts:\n  - {name: e, base_url: 'http://127.0.0.1:1/v1', model: m}\n"
        + "  - {name: e, base_url: 'http://127.0.0.1:2/v1', model: m}\n"
    )
    assert (
        "experts[1].name",
        "'e' is already declared at experts[0]; names in experts must be unique",
    ) in found
