"""``cxeb targets``: the real Typer app, offline commands here, API commands against the sandbox over loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

PLAIN_SECRET = "plain-bearer-value-do-not-print"

VALID = """\
name: crm-webhook
endpoint: https://hooks.example.com/cxone
authentication:
  type: bearer
  value: ${env:CRM_TOKEN}
retryPolicy:
  maxRetries: 5
"""

INVALID = """\
- name: ok-target
  endpoint: https://hooks.example.com/a
- name: bad-target
  endpoint: http://hooks.example.com/b
  retryPolicy:
    maxRetries: 11
  eventFilters:
    - field: contact.skill
      operator: matches
      value: x
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach the command (a developer's CXONE_* must not leak in)."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_")):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    """A valid file exits 0 without any settings, and warns that the referenced variable is unset."""
    path = _write(tmp_path, "targets.yaml", VALID)
    result = CliRunner().invoke(app, ["targets", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 target(s) valid" in result.stderr
    assert "CRM_TOKEN is not set" in result.stderr


def test_validate_reports_every_error_of_every_file(tmp_path: Path) -> None:
    """Two bad files: every error of both is printed with its line and wire path, exit 2, no traceback."""
    bad = _write(tmp_path, "bad.yaml", INVALID)
    also_bad = _write(tmp_path, "also-bad.json", json.dumps({"name": "", "endpoint": "https://x.example"}))
    good = _write(tmp_path, "good.yaml", VALID)
    result = CliRunner().invoke(app, ["targets", "validate", str(bad), str(good), str(also_bad)])
    assert result.exit_code == 2
    err = result.stderr
    assert "bad.yaml:4: [1].endpoint" in err
    assert "bad.yaml:6: [1].retryPolicy.maxRetries" in err
    assert "[1].eventFilters[0].operator" in err
    assert "also-bad.json" in err
    assert "name" in err
    assert "good.yaml: 1 target(s) valid" in err
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_json_output(tmp_path: Path) -> None:
    """``--output json`` prints one report per file, with field errors as {field, message}."""
    bad = _write(tmp_path, "bad.yaml", INVALID)
    good = _write(tmp_path, "good.yaml", VALID)
    result = CliRunner().invoke(app, ["targets", "validate", "--output", "json", str(good), str(bad)])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [entry["valid"] for entry in report] == [True, False]
    assert report[0]["targets"] == ["crm-webhook"]
    fields = [error["field"] for error in report[1]["errors"]]
    assert any(field.endswith("[1].retryPolicy.maxRetries") for field in fields)


def test_plaintext_secret_warns_and_can_be_forbidden(tmp_path: Path) -> None:
    """A plain-text secret is a warning naming the field (never the value); the flag makes it exit 2."""
    path = _write(tmp_path, "plain.yaml", VALID.replace("${env:CRM_TOKEN}", PLAIN_SECRET))
    runner = CliRunner()
    warned = runner.invoke(app, ["targets", "validate", str(path)])
    assert warned.exit_code == 0
    assert "authentication.value holds a plain-text secret" in warned.stderr
    refused = runner.invoke(app, ["targets", "validate", "--forbid-plaintext-secrets", str(path)])
    assert refused.exit_code == 2
    for result in (warned, refused):
        assert PLAIN_SECRET not in result.output


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    """A missing file is one clear message and exit 2."""
    result = CliRunner().invoke(app, ["targets", "validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["list"], ["get", "x"], ["delete", "x", "--yes"], ["test", "x"], ["create", "-f", "t.yaml"]],
    ids=["list", "get", "delete", "test", "create"],
)
def test_api_commands_need_a_base_url(args: list[str]) -> None:
    """Without CXONE_BASE_URL an API command says how to start the sandbox and exits 2."""
    result = CliRunner().invoke(app, ["targets", *args])
    assert result.exit_code == 2
    assert "CXONE_BASE_URL is not set" in result.stderr
    assert "cxeb sandbox serve" in result.stderr


def test_invalid_setting_names_the_variable() -> None:
    """A malformed CXONE_* variable is named in one message, exit 2."""
    result = CliRunner().invoke(
        app, ["targets", "list"], env={"CXONE_BASE_URL": "http://127.0.0.1:1", "CXONE_GRANT_TYPE": "implicit"}
    )
    assert result.exit_code == 2
    assert "CXONE_GRANT_TYPE" in result.stderr
