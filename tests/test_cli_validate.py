"""`python -m components validate` and `schema`, and what `run` and `edit` refuse before
starting, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID_EXAMPLES = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\$\S*): (?P<message>.+)$")


def run(*args: str, cwd: Path = ROOT, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MQTT_USERNAME", "MQTT_PASSWORD", "APP_FILE_TEST_UNSET")}
    env.update(PYTHONPATH=str(ROOT), MQTT_USERNAME="presence-bot", MQTT_PASSWORD="not-a-real-secret")
    for name in unset:
        del env[name]
    return subprocess.run(
        [sys.executable, "-m", "components", *args],
        cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=60,
    )


def test_valid_files_exit_0_quietly():
    result = run("validate", *map(str, EXAMPLES))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_invalid_files_exit_1_with_one_line_per_problem():
    names = [str(p.relative_to(ROOT)) for p in INVALID_EXAMPLES]
    result = run("validate", *names)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    for line in lines:
        assert PROBLEM_LINE.match(line), line
    assert {PROBLEM_LINE.match(line)["file"] for line in lines} == set(names)


def test_error_format_names_file_line_column_and_path(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text("version: 1\norg: acme\nwidgets:\n  - type: typing_indicator\n    ttl: -1\n", encoding="utf-8")
    result = run("validate", "app.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "app.yaml:5:10: $.widgets[0].ttl: -1 is less than the minimum of 1\n"


def test_any_invalid_file_makes_the_run_fail():
    result = run("validate", str(EXAMPLES[0]), str(INVALID_EXAMPLES[0]), str(EXAMPLES[1]))
    assert result.returncode == 1 and str(INVALID_EXAMPLES[0]) in result.stderr


@pytest.mark.parametrize("extra", [[], ["examples/invalid/misspelt_key.yaml"]])
def test_unreadable_file_exits_2(extra):
    result = run("validate", "examples/minimal_presence.yaml", "no/such/file.yaml", *extra)
    assert result.returncode == 2
    assert "no/such/file.yaml: cannot read: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_is_not_readable_as_a_file():
    result = run("validate", "examples")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_schema_command_prints_the_shipped_schema():
    result = run("schema")
    assert result.returncode == 0 and result.stderr == ""
    shipped = json.loads((ROOT / "schemas" / "app.schema.json").read_text(encoding="utf-8"))
    assert json.loads(result.stdout) == shipped


def test_validate_needs_a_file():
    assert run("validate").returncode == 2  # argparse's usage error


def test_examples_validate_without_their_secrets_and_say_what_is_unset():
    result = run("validate", *map(str, EXAMPLES), unset=("MQTT_USERNAME", "MQTT_PASSWORD"))
    assert result.returncode == 0, result.stderr
    secured = str(ROOT / "examples" / "secured_broker.yaml")
    assert result.stderr.splitlines() == [
        f"{secured}:7:13: $.broker.username: warning: the environment variable MQTT_USERNAME is not set",
        f"{secured}:8:13: $.broker.password: warning: the environment variable MQTT_PASSWORD is not set",
    ]


def test_require_env_makes_an_unset_variable_a_problem():
    result = run("validate", "--require-env", *map(str, EXAMPLES), unset=("MQTT_PASSWORD",))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{ROOT / 'examples' / 'secured_broker.yaml'}:8:13: $.broker.password: the environment variable MQTT_PASSWORD is not set"
    ]
    assert run("validate", "--require-env", *map(str, EXAMPLES)).returncode == 0  # all set


def test_run_refuses_a_file_that_would_not_start_before_starting_anything(tmp_path):
    app = tmp_path / "app.yaml"
    app.write_text("version: 1\norg: acme\nbroker:\n  url: mqtt://127.0.0.1:1\n  password: ${MQTT_PASSWORD}\n", encoding="utf-8")
    result = run("run", "app.yaml", "--server.port", "1", cwd=tmp_path, unset=("MQTT_PASSWORD",))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{app}:5:13: $.broker.password: the environment variable MQTT_PASSWORD is not set\n"
    assert run("edit", "missing/dir/app.yaml", cwd=tmp_path).returncode == 2
