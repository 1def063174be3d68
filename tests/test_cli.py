"""The CLI as users run it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import tiny_intents
from tests.support.cli import run


def test_route_json(cli_env: dict[str, str]) -> None:
    completed = run(["route", "convert 3 miles to kilometers", "--json"], cli_env)
    assert completed.returncode == 0, completed.stderr
    decision = json.loads(completed.stdout)
    assert decision["skills"][0]["skill"] == "unit_conversion"
    assert decision["schema"] == "skillswitch.routing/1"


def test_route_text_output_and_stdin(cli_env: dict[str, str]) -> None:
    completed = run(["route", "-"], cli_env, stdin=b"what time is it in Berlin?")
    assert completed.returncode == 0
    assert "datetime" in completed.stdout
    assert "threshold" in completed.stdout


def test_route_does_not_import_torch(cli_env: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "skillswitch", "route", "hi"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in completed.stderr.splitlines()}
    assert "torch" not in imported
    assert "transformers" not in imported


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["route", ""], "empty"),
        (["route", "   "], "only whitespace"),
        (["route", "hi", "--config", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_route_errors_exit_2_with_one_message(
    cli_env: dict[str, str], args: list[str], fragment: str
) -> None:
    completed = run(args, cli_env)
    assert completed.returncode == 2
    assert fragment in completed.stderr
    assert completed.stdout == ""


def test_route_rejects_non_utf8_stdin(cli_env: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "skillswitch", "route", "-"],
        input=b"\xff\xfe not utf-8",
        capture_output=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert b"not valid UTF-8" in completed.stderr
    assert b"Traceback" not in completed.stderr


def test_demo_prints_a_table(cli_env: dict[str, str]) -> None:
    completed = run(["demo"], cli_env)
    assert completed.returncode == 0, completed.stderr
    assert "unit_conversion" in completed.stdout
    assert "reject (out of scope)" in completed.stdout
    assert completed.stdout.count("│") > 20 * 4
    # the default config answers math, units and time with its builtin MCP tools
    assert "441 (calculator)" in completed.stdout
    assert "26.2 mile = 42.1648 km (converter)" in completed.stdout
    assert "+08:00 (clock)" in completed.stdout
    assert "(no expert configured for this skill)" in completed.stdout


def test_demo_in_a_narrow_terminal_prints_one_block_per_request(cli_env: dict[str, str]) -> None:
    completed = run(["demo"], {**cli_env, "COLUMNS": "40"})
    assert completed.returncode == 0, completed.stderr
    assert "│" not in completed.stdout  # no table squeezed to a letter per line
    assert "Convert 26.2 miles to kilometres\n  unit_conversion 0." in completed.stdout
    assert "-> 26.2 mile = 42.1648 km (converter)" in completed.stdout
    assert "reject (out of scope)" in completed.stdout


def test_config_schema_and_check(cli_env: dict[str, str], tmp_path: Path) -> None:
    schema = json.loads(run(["config", "schema"], cli_env).stdout)
    assert "skills" in schema["properties"]
    good = tmp_path / "good.yaml"
    good.write_text(run(["config", "show"], cli_env).stdout, encoding="utf-8")
    checked = run(["config", "check", str(good)], cli_env)
    assert checked.returncode == 0
    assert "valid and builds (11 skills" in checked.stdout
    # Valid YAML that serve could not start with: checked by building it, unless --no-build.
    unstartable = tmp_path / "unstartable.yaml"
    text = good.read_text(encoding="utf-8")
    assert "\n  profiles: null\n" in text
    unstartable.write_text(text.replace("\n  profiles: null\n", "\n  profiles: ./nope\n"), "utf-8")
    refused = run(["config", "check", str(unstartable)], cli_env)
    assert refused.returncode == 2, refused.stderr
    assert "no expert profiles at" in refused.stderr
    assert "build them with `skillswitch fit profiles" in refused.stderr
    static = run(["config", "check", "--no-build", str(unstartable)], cli_env)
    assert static.returncode == 0, static.stderr
    assert "valid (11 skills" in static.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("skills:\n  - name: x\n    description: d\n    examples: []\n", encoding="utf-8")
    failed = run(["config", "check", str(bad)], cli_env)
    assert failed.returncode == 2
    assert f"{bad}:4:5: skills[0].examples" in failed.stderr


def test_eval_intents_writes_json_and_plot(cli_env: dict[str, str], tmp_path: Path) -> None:
    paths = tiny_intents.write(tmp_path)
    out, plot = tmp_path / "report.json", tmp_path / "report.png"
    completed = run(
        [
            "eval",
            "intents",
            "--train",
            str(paths["train"]),
            "--val",
            str(paths["val"]),
            "--test",
            str(paths["test"]),
            "--json",
            str(out),
            "--plot",
            str(plot),
            "--latency-requests",
            "5",
        ],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "in-scope accuracy" in completed.stdout
    report = json.loads(out.read_text())
    assert report["metrics"]["in_scope_items"] == 9
    assert report["metrics"]["oos_items"] == 3
    assert report["metrics"]["in_scope_accuracy"] >= 0.6
    assert report["latency_ms"]["n"] == 5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_rejects_unknown_test_labels(cli_env: dict[str, str], tmp_path: Path) -> None:
    paths = tiny_intents.write(tmp_path)
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"text": "hi", "label": "gret"}\n', encoding="utf-8")
    completed = run(
        ["eval", "intents", "--train", str(paths["train"]), "--test", str(odd)], cli_env
    )
    assert completed.returncode == 2
    assert "did you mean 'greet'" in completed.stderr


def test_fit_then_route_with_the_artifact(cli_env: dict[str, str], tmp_path: Path) -> None:
    paths = tiny_intents.write(tmp_path)
    artifact = tmp_path / "artifact"
    fitted = run(
        [
            "fit",
            "intents",
            "--train",
            str(paths["train"]),
            "--out",
            str(artifact),
            "--method",
            "linear",
        ],
        cli_env,
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "chosen on validation" in fitted.stdout
    config = tmp_path / "config.yaml"
    config.write_text(
        f"router:\n  classifier: {{kind: trained, artifact: {artifact.name}}}\nout_of_scope: {{label: oos}}\n",
        encoding="utf-8",
    )
    routed = run(["route", "what is 4 times 4", "--config", str(config), "--json"], cli_env)
    assert routed.returncode == 0, routed.stderr
    assert json.loads(routed.stdout)["skills"][0]["skill"] == "math"


def test_eval_with_a_trained_method(cli_env: dict[str, str], tmp_path: Path) -> None:
    paths = tiny_intents.write(tmp_path)
    completed = run(
        [
            "eval",
            "intents",
            "--train",
            str(paths["train"]),
            "--val",
            str(paths["val"]),
            "--test",
            str(paths["test"]),
            "--method",
            "linear",
            "--latency-requests",
            "3",
            "--json",
            str(tmp_path / "r.json"),
        ],
        cli_env,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["calibration"]["out_of_scope_items"] == 2
    assert report["metrics"]["in_scope_accuracy"] >= 0.6
