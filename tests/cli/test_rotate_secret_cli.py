"""``cxeb targets rotate-secret`` and the rotation's traces in ``targets get``, plan and drift, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.cli.targets import parse_grace
from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.signing import generate_signing_secret

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TARGET = """\
name: crm
endpoint: https://hooks.example.com/cxone
signingSecret: ${env:CRM_SIGNING_SECRET}
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach the command."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_")):
            monkeypatch.delenv(name)


def _env(sandbox: Any, **extra: str) -> dict[str, str]:
    return {
        "CXONE_BASE_URL": sandbox.base_url,
        "CXONE_CLIENT_ID": sandbox.client_id,
        "CXONE_CLIENT_SECRET": sandbox.client_secret,
        "CRM_SIGNING_SECRET": OLD,
        **extra,
    }


async def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86_400), ("30m", 1800), ("90s", 90), ("7d", 604_800), ("0", 0), (" 2H ", 7200)]
)
def test_grace_durations(text: str, seconds: int) -> None:
    """--grace reads s/m/h/d suffixes and plain seconds."""
    assert parse_grace(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1.5h", "-1h", "1w", "8d"])
def test_bad_grace_durations_are_input_errors(text: str) -> None:
    """A duration that is not one, or longer than 7 days, is an input error naming --grace."""
    with pytest.raises(InputError, match="--grace"):
        parse_grace(text)


async def test_rotate_with_a_reference_then_get_plan_and_drift_show_the_grace_period(
    sandbox: Any, tmp_path: Path
) -> None:
    """rotate-secret --secret ${env:...} rotates; get, plan and drift show fingerprints and expiry, never values."""
    new = generate_signing_secret()
    env = _env(sandbox, NEW_SECRET=new)
    targets = tmp_path / "targets.yaml"
    targets.write_text(TARGET)
    created = await _invoke(["targets", "create", "-f", str(targets)], env)
    assert created.exit_code == 0, created.output
    exported = await _invoke(["export", "terraform", "--out", str(tmp_path / "tf")], env)
    assert exported.exit_code == 0, exported.output

    rotated = await _invoke(
        ["targets", "rotate-secret", "crm", "--secret", "${env:NEW_SECRET}", "--grace", "2h", "-o", "json"], env
    )
    assert rotated.exit_code == 0, rotated.output
    body = json.loads(rotated.stdout)
    assert body["generatedSigningSecret"] is None
    assert body["previousSigningSecret"]["fingerprint"].startswith("sha256:")
    assert body["previousSigningSecret"]["secret"] is None

    got = await _invoke(["targets", "get", "crm"], {**env, "COLUMNS": "200"})
    assert got.exit_code == 0, got.output
    assert "previous signing secret" in got.stdout
    assert body["previousSigningSecret"]["fingerprint"] in got.stdout
    assert "also signs until" in got.stdout

    plan = await _invoke(["plan", "-f", str(targets), "-o", "json"], env)
    assert plan.exit_code == 2, plan.output  # the file still holds the old secret: applying would cut over
    (item,) = json.loads(plan.stdout)["targets"]
    assert item["changes"] == [
        {"path": "signingSecret", "before": "(sensitive)", "after": "(sensitive)", "sensitive": True}
    ]
    assert item["previousSigningSecret"] == {"expiresAt": body["previousSigningSecret"]["expiresAt"]}
    table = await _invoke(["plan", "-f", str(targets)], {**env, "COLUMNS": "250"})
    assert "also signs until" in table.stdout

    drift = await _invoke(["drift", "--state", str(tmp_path / "tf" / "terraform.tfstate"), "-o", "json"], env)
    assert drift.exit_code == 2, drift.output
    (drifted,) = json.loads(drift.stdout)["targets"]
    paths = [change["path"] for change in drifted["changes"]]
    assert paths == ["previousSigningSecret", "signingSecret"]
    assert drifted["changes"][1]["sensitive"] is True
    for result in (rotated, got, plan, table, drift):
        assert OLD not in result.output
        assert new not in result.output


async def test_rotate_without_a_secret_prints_the_generated_one_once(sandbox: Any, tmp_path: Path) -> None:
    """Without --secret the server generates the secret; the command prints it, and get never shows it again."""
    env = _env(sandbox)
    targets = tmp_path / "targets.yaml"
    targets.write_text(TARGET)
    created = await _invoke(["targets", "create", "-f", str(targets)], env)
    assert created.exit_code == 0, created.output
    rotated = await _invoke(["targets", "rotate-secret", "crm", "--grace", "0"], env)
    assert rotated.exit_code == 0, rotated.output
    line = next(line for line in rotated.stdout.splitlines() if "shown once" in line)
    generated = line.rsplit(" ", 1)[1]
    assert generated.startswith("whsec_")
    got = await _invoke(["targets", "get", "crm", "-o", "json"], env)
    assert generated not in got.output
    assert json.loads(got.stdout)["previousSigningSecret"] is None


async def test_bad_secret_options_exit_2_without_echoing(sandbox: Any) -> None:
    """An unset variable, a malformed reference, a non-whsec value or a bad --grace exit 2 and print no secret."""
    env = _env(sandbox)
    for args, message in (
        (["--secret", "${env:UNSET_SECRET_VAR}"], "UNSET_SECRET_VAR is not set"),
        (["--secret", "${SECRET}"], "malformed secret reference"),
        (["--secret", "plain-not-whsec-value"], "whsec_"),
        (["--grace", "soon"], "--grace"),
    ):
        result = await _invoke(["targets", "rotate-secret", "crm", *args], env)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert "plain-not-whsec-value" not in result.output
