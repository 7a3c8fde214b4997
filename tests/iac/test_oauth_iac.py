"""An oauth_client_credentials target through targets files, plan, apply, import, Terraform export and drift."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app
from cxone_eventbridge.iac.schema import targets_file_schema

CLIENT_SECRET = "oauth-iac-secret-never-printed"
TARGET = """\
name: orders
endpoint: https://hooks.example.com/orders
authentication:
  type: oauth_client_credentials
  oauth:
    tokenUrl: https://auth.example.com/oauth/token
    clientId: orders-client
    clientSecret: ${env:ORDERS_CLIENT_SECRET}
    scopes: [events:write]
    tokenFormFields: {audience: "https://api.example.com"}
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach the command."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_")):
            monkeypatch.delenv(name)


async def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, args, env=env)


def test_the_schema_describes_the_oauth_settings() -> None:
    """The targets-file schema has the oauth object, with clientSecret described as a reference."""
    oauth = targets_file_schema()["$defs"]["OAuthClientCredentials"]
    assert {"tokenUrl", "clientId", "clientSecret", "scopes", "tokenFormFields", "tokenHeaders"} <= set(
        oauth["properties"]
    )
    assert "${env:NAME}" in oauth["properties"]["clientSecret"]["description"]


async def test_plan_apply_import_export_and_drift(sandbox: Any, tmp_path: Path) -> None:
    """Create by apply, change a scope by apply, import with a reference, export without the secret, no drift."""
    env = {
        "CXONE_BASE_URL": sandbox.base_url,
        "CXONE_CLIENT_ID": sandbox.client_id,
        "CXONE_CLIENT_SECRET": sandbox.client_secret,
        "ORDERS_CLIENT_SECRET": CLIENT_SECRET,
    }
    path = tmp_path / "targets.yaml"
    path.write_text(TARGET)
    unset = await _invoke(
        ["plan", "-f", str(path), "-o", "json"], {k: v for k, v in env.items() if k != "ORDERS_CLIENT_SECRET"}
    )
    assert unset.exit_code == 2, unset.output
    assert json.loads(unset.stdout)["targets"][0]["unknown"] == ["authentication.oauth.clientSecret"]

    plan = await _invoke(["plan", "-f", str(path), "-o", "json"], env)
    assert plan.exit_code == 2, plan.output
    changes = {c["path"]: c for c in json.loads(plan.stdout)["targets"][0]["changes"]}
    assert changes["authentication.oauth.clientSecret"]["sensitive"] is True
    assert changes["authentication.oauth.clientId"]["after"] == "orders-client"

    applied = await _invoke(["apply", "-f", str(path), "--yes"], env)
    assert applied.exit_code == 0, applied.output
    again = await _invoke(["plan", "-f", str(path), "-o", "json"], env)
    assert again.exit_code == 0, again.output

    path.write_text(TARGET.replace("scopes: [events:write]", "scopes: [events:write, events:read]"))
    changed = await _invoke(["plan", "-f", str(path), "-o", "json"], env)
    assert changed.exit_code == 2, changed.output
    (change,) = json.loads(changed.stdout)["targets"][0]["changes"]
    assert change == {
        "path": "authentication.oauth.scopes",
        "before": ["events:write"],
        "after": ["events:write", "events:read"],
        "sensitive": False,
    }
    assert (await _invoke(["apply", "-f", str(path), "--yes"], env)).exit_code == 0
    assert (await _invoke(["plan", "-f", str(path)], env)).exit_code == 0
    path.write_text(path.read_text().replace("${env:ORDERS_CLIENT_SECRET}", "${env:OTHER_SECRET}"))
    rotated = await _invoke(["plan", "-f", str(path), "-o", "json"], {**env, "OTHER_SECRET": "another-secret"})
    assert rotated.exit_code == 2
    (secret_change,) = json.loads(rotated.stdout)["targets"][0]["changes"]
    assert secret_change["path"] == "authentication.oauth.clientSecret"
    assert secret_change["sensitive"] is True

    imported_path = tmp_path / "imported.yaml"
    imported = await _invoke(["import", "--out", str(imported_path)], env)
    assert imported.exit_code == 0, imported.output
    (document,) = yaml.safe_load(imported_path.read_text())
    oauth = document["authentication"]["oauth"]
    assert oauth["clientSecret"].startswith("${env:")
    assert oauth["scopes"] == ["events:write", "events:read"]

    out = tmp_path / "tf"
    exported = await _invoke(["export", "terraform", "--out", str(out)], env)
    assert exported.exit_code == 0, exported.output
    state_text = (out / "terraform.tfstate").read_text()
    config = json.loads((out / "main.tf.json").read_text())
    (resource,) = json.loads(state_text)["resources"]
    attributes = resource["instances"][0]["attributes"]
    assert attributes["authentication"]["oauth"]["client_secret"] is None
    assert attributes["authentication"]["oauth"]["token_url"] == "https://auth.example.com/oauth/token"
    assert ["authentication", "oauth", "client_secret"] in [
        [step["value"] for step in path] for path in resource["instances"][0]["sensitive_attributes"]
    ]
    body = config["resource"]["cxone_integration_target"]["orders"]
    assert body["authentication"]["oauth"]["client_secret"] == "${var.orders_oauth_client_secret}"
    assert config["variable"]["orders_oauth_client_secret"]["sensitive"] is True
    drift = await _invoke(["drift", "--state", str(out / "terraform.tfstate")], env)
    assert drift.exit_code == 0, drift.output
    for result in (plan, applied, again, changed, imported, exported, drift):
        assert CLIENT_SECRET not in result.output
    assert CLIENT_SECRET not in state_text
    assert CLIENT_SECRET not in json.dumps(config)
    assert CLIENT_SECRET not in imported_path.read_text()
