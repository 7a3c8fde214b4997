"""``cxeb targets``: the real Typer app, offline commands here, API commands against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.observe.audit import verify_audit_log

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


# -- against the sandbox, over loopback, with only CXONE_* variables set ---------------------------------

CRM_TOKEN = "crm-token-value-never-printed"


def _env(sandbox: Any, **extra: str) -> dict[str, str]:
    env = {
        "CXONE_BASE_URL": sandbox.base_url,
        "CXONE_CLIENT_ID": sandbox.client_id,
        "CXONE_CLIENT_SECRET": sandbox.client_secret,
    }
    env.update(extra)
    return env


async def _invoke(args: list[str], env: dict[str, str]) -> Result:
    # The command runs its own event loop (asyncio.run), so it runs in a thread while this test's loop keeps
    # the HTTPS receiver serving.
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


def _assert_no_secrets(result: Result, sandbox: Any) -> None:
    assert CRM_TOKEN not in result.output
    assert sandbox.client_secret not in result.output
    assert "Traceback" not in result.output


async def test_targets_lifecycle_against_the_sandbox(
    sandbox: Any, https_receiver: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    """create, list, get, test, update, delete and get-after-delete, with exit codes and no secret printed."""
    receiver = await https_receiver()
    path = _write(tmp_path, "targets.yaml", VALID.replace("https://hooks.example.com/cxone", f"{receiver.url}/hook"))
    env = _env(sandbox, CRM_TOKEN=CRM_TOKEN)

    created = await _invoke(["targets", "create", "-f", str(path)], env)
    assert created.exit_code == 0, created.output
    assert "crm-webhook" in created.stdout

    listed = await _invoke(["targets", "list", "--output", "json"], env)
    assert listed.exit_code == 0, listed.output
    (item,) = json.loads(listed.stdout)
    assert item["name"] == "crm-webhook"
    assert item["authentication"]["value"] is None
    assert item["authentication"]["valueFingerprint"].startswith("sha256:")
    assert item["retryPolicy"]["maxRetries"] == 5

    got = await _invoke(["targets", "get", item["id"], "--output", "json"], env)
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["name"] == "crm-webhook"

    tested = await _invoke(["targets", "test", "crm-webhook"], env)
    assert tested.exit_code == 0, tested.output
    assert "passed" in tested.stdout
    (record,) = receiver.records()
    headers = {name.lower(): value for name, value in record["headers"].items()}
    assert headers["authorization"] == f"Bearer {CRM_TOKEN}"  # the resolved reference reached the endpoint

    path.write_text(path.read_text().replace("maxRetries: 5", "maxRetries: 2"))
    updated = await _invoke(["targets", "update", "crm-webhook", "-f", str(path), "--output", "json"], env)
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout)["retryPolicy"]["maxRetries"] == 2

    refused = await _invoke(["targets", "delete", "crm-webhook"], env)  # not a TTY and no --yes: refused
    assert refused.exit_code == 2, refused.output
    deleted = await _invoke(["targets", "delete", "crm-webhook", "--yes"], env)
    assert deleted.exit_code == 0, deleted.output
    assert "deleted target 'crm-webhook'" in deleted.stderr

    gone = await _invoke(["targets", "get", "crm-webhook"], env)
    assert gone.exit_code == 1
    assert "no target has the id or name 'crm-webhook'" in gone.stderr

    for result in (created, listed, got, tested, updated, deleted, gone):
        _assert_no_secrets(result, sandbox)


async def test_failed_test_exits_1_with_the_result(
    sandbox: Any, https_receiver: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    """A target whose endpoint answers 500 is created, then ``test`` prints the failed result and exits 1."""
    receiver = await https_receiver(status=500)
    text = VALID.replace("https://hooks.example.com/cxone", f"{receiver.url}/hook")
    path = _write(tmp_path, "targets.yaml", text)
    env = _env(sandbox, CRM_TOKEN=CRM_TOKEN)
    assert (await _invoke(["targets", "create", "-f", str(path)], env)).exit_code == 0
    result = await _invoke(["targets", "test", "crm-webhook", "--output", "json"], env)
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert (body["target"], body["result"], body["statusCode"]) == ("crm-webhook", "failed", 500)
    assert len(receiver.records()) == 1


def test_create_with_an_unset_variable_is_an_input_error(sandbox: Any, tmp_path: Path) -> None:
    """``create`` resolves references: an unset variable names itself, exits 2 and creates nothing."""
    path = _write(tmp_path, "targets.yaml", VALID)
    result = CliRunner().invoke(app, ["targets", "create", "-f", str(path)], env=_env(sandbox))
    assert result.exit_code == 2
    assert "environment variable CRM_TOKEN is not set" in result.stderr
    listed = CliRunner().invoke(app, ["targets", "list", "--output", "json"], env=_env(sandbox))
    assert json.loads(listed.stdout) == []


def test_duplicate_create_reports_and_exits_1(sandbox: Any, tmp_path: Path) -> None:
    """Creating an existing name prints the API's 409 in one line per target and exits 1, no traceback."""
    path = _write(tmp_path, "targets.yaml", VALID)
    env = _env(sandbox, CRM_TOKEN=CRM_TOKEN)
    assert CliRunner().invoke(app, ["targets", "create", "-f", str(path)], env=env).exit_code == 0
    again = CliRunner().invoke(app, ["targets", "create", "-f", str(path)], env=env)
    assert again.exit_code == 1
    assert "crm-webhook:" in again.stderr
    assert "409" in again.stderr
    _assert_no_secrets(again, sandbox)


def test_create_writes_the_audit_log(sandbox: Any, tmp_path: Path) -> None:
    """``--audit-log`` appends a verified control record for the create, with no secret in the file."""
    path = _write(tmp_path, "targets.yaml", VALID)
    audit_path = tmp_path / "audit.log"
    env = _env(sandbox, CRM_TOKEN=CRM_TOKEN)
    result = CliRunner().invoke(app, ["targets", "create", "-f", str(path), "--audit-log", str(audit_path)], env=env)
    assert result.exit_code == 0, result.output
    (line,) = audit_path.read_text().splitlines()
    record = json.loads(line)
    assert (record["kind"], record["action"], record["target"]) == ("control", "create", "crm-webhook")
    assert CRM_TOKEN not in line
    assert verify_audit_log(audit_path).ok


def test_unreachable_api_exits_1(tmp_path: Path) -> None:
    """A closed port is one 'got no answer' message and exit 1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "CXONE_BASE_URL": f"http://127.0.0.1:{port}",
        "CXONE_CLIENT_ID": "id",
        "CXONE_CLIENT_SECRET": "secret-not-printed",
        "CXONE_MAX_ATTEMPTS": "1",
    }
    result = CliRunner().invoke(app, ["targets", "list"], env=env)
    assert result.exit_code == 1
    assert "got no answer" in result.stderr
    assert "secret-not-printed" not in result.output
    assert "Traceback" not in result.output


LONG_NAMES = """\
- name: Negative sentiment alerts
  endpoint: https://alerts.example.com/hooks/negative-sentiment/escalations
- name: Compliance archive
  endpoint: https://archive.example.com/cxone/events/compliance
  eventPattern: {eventType: [call.ended]}
"""


async def test_list_keeps_every_id_whole_at_80_columns(sandbox: Any, tmp_path: Path) -> None:
    """At COLUMNS=80 each target is one line: its whole `tgt_…` id, then its name, never folded or cut."""
    env = _env(sandbox, COLUMNS="80")
    path = _write(tmp_path, "targets.yaml", LONG_NAMES)
    assert (await _invoke(["targets", "create", "-f", str(path)], env)).exit_code == 0
    ids = {t["name"]: t["id"] for t in json.loads((await _invoke(["targets", "list", "-o", "json"], env)).stdout)}
    listed = await _invoke(["targets", "list"], env)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    for name, target_id in ids.items():
        (line,) = [line for line in lines if target_id in line]
        assert line.startswith(f"{target_id}  {name}  ")
    assert lines[0].split() == ["ID", "NAME", "AUTH", "RULES", "STATUS", "ENDPOINT"]
    assert "https://alerts.example.com/hooks/negative-sentiment/escalations" in listed.stdout
