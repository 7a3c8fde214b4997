"""IaC end to end against the real sandbox on loopback: plan, apply, plan, out-of-band change, drift, import.

The CLI runs in process (Typer's CliRunner); the sandbox serves on a 127.0.0.1 ephemeral port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.cli.main import app
from cxone_eventbridge.iac.apply import apply_plan
from cxone_eventbridge.iac.plan import Action, compute_plan
from cxone_eventbridge.iac.remote import read_remote
from cxone_eventbridge.iac.targets_file import SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObservedEvent, ObserverBus, TargetChanged
from cxone_eventbridge.signing import generate_signing_secret

pytestmark = pytest.mark.e2e

ORDERS_TOKEN = "orders-token-do-not-print"
AGENT_KEY = "agent-key-do-not-print"
SIGNING = generate_signing_secret()

TARGETS = """\
- name: Orders
  endpoint: https://hooks.example.com/orders
  authentication:
    type: bearer
    value: ${env:ORDERS_TOKEN}
  retryPolicy:
    maxRetries: 5
- name: Agent events
  endpoint: https://hooks.example.com/agents
  authentication:
    type: api_key
    headerName: X-Agent-Key
    value: ${env:AGENT_KEY}
  signingSecret: ${env:AGENT_SIGNING}
  eventFilters:
    - field: type
      operator: prefix
      value: agent.
- name: Queue stats
  endpoint: https://hooks.example.com/queues
"""


@pytest.fixture
def api_env(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's settings as CXONE_* variables, the targets' secrets set, nothing else leaking in."""
    for name in list(os.environ):
        if name.startswith(("CXONE_", "CXEB_")):
            monkeypatch.delenv(name)
    settings = sandbox.settings()
    monkeypatch.setenv("CXONE_BASE_URL", settings.base_url)
    monkeypatch.setenv("CXONE_TOKEN_URL", settings.resolved_token_url)
    monkeypatch.setenv("CXONE_CLIENT_ID", settings.client_id)
    monkeypatch.setenv("CXONE_CLIENT_SECRET", settings.client_secret.get_secret_value())
    monkeypatch.setenv("CXONE_RATE_LIMIT_PER_MINUTE", str(settings.rate_limit_per_minute))
    monkeypatch.setenv("ORDERS_TOKEN", ORDERS_TOKEN)
    monkeypatch.setenv("AGENT_KEY", AGENT_KEY)
    monkeypatch.setenv("AGENT_SIGNING", SIGNING)


def _cxeb(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _no_secrets(result: Result) -> None:
    for secret in (ORDERS_TOKEN, AGENT_KEY, SIGNING):
        assert secret not in result.output


def _client(sandbox: Any, bus: ObserverBus | None = None) -> CXoneClient:
    return CXoneClient.from_settings(sandbox.settings(), bus=bus)


@pytest.mark.usefixtures("api_env")
def test_plan_apply_plan_then_out_of_band_change_is_drift(sandbox: Any, tmp_path: Path) -> None:
    """plan (2) -> apply -> plan (0) -> apply (no changes) -> export -> API change -> drift (2) -> apply converges."""
    targets_file = tmp_path / "targets.yaml"
    targets_file.write_text(TARGETS)

    first = _cxeb("plan", "-f", str(targets_file), "--output", "json")
    assert first.exit_code == 2, first.output
    plan = json.loads(first.stdout)
    assert plan["summary"] == {"create": 3, "update": 0, "delete": 0, "unchanged": 0}
    _no_secrets(first)

    applied = _cxeb("apply", "-f", str(targets_file), "--yes")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 3 change(s) made." in applied.stderr
    _no_secrets(applied)

    again = _cxeb("plan", "-f", str(targets_file), "--output", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["summary"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 3}
    assert all(t["unknown"] == [] for t in json.loads(again.stdout)["targets"])  # signing secret compared too

    second_apply = _cxeb("apply", "-f", str(targets_file), "--yes")
    assert second_apply.exit_code == 0, second_apply.output
    assert "No changes." in second_apply.stderr

    export_dir = tmp_path / "export"
    exported = _cxeb("export", "terraform", "--out", str(export_dir))
    assert exported.exit_code == 0, exported.output
    state_path = export_dir / "terraform.tfstate"
    state_bytes = state_path.read_bytes()
    re_exported = _cxeb("export", "terraform", "--out", str(export_dir))
    assert re_exported.exit_code == 0, re_exported.output
    assert "terraform.tfstate unchanged (serial 1" in re_exported.stderr
    assert state_path.read_bytes() == state_bytes
    assert sorted(p.name for p in export_dir.iterdir()) == ["main.tf.json", "terraform.tfstate"]
    assert _cxeb("drift", "--state", str(state_path)).exit_code == 0
    if (terraform := shutil.which("terraform")) is not None:
        listed = subprocess.run(
            [terraform, "state", "list", f"-state={state_path}"],
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "CHECKPOINT_DISABLE": "1",
                "TF_CLI_CONFIG_FILE": "",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [
            "cxone_integration_target.agent_events",
            "cxone_integration_target.orders",
            "cxone_integration_target.queue_stats",
        ]

    async def change_out_of_band() -> None:
        async with _client(sandbox) as client:
            orders = await client.targets.find_by_name("Orders")
            queue = await client.targets.find_by_name("Queue stats")
            assert orders is not None
            assert orders.id is not None
            assert queue is not None
            assert queue.id is not None
            await client.targets.patch(orders.id, {"retryPolicy": {"maxRetries": 9}})
            await client.targets.delete(queue.id)
            await client.targets.create(IntegrationTarget(name="Shadow", endpoint="https://hooks.example.com/shadow"))

    asyncio.run(change_out_of_band())

    drift = _cxeb("drift", "--state", str(state_path), "--output", "json")
    assert drift.exit_code == 2, drift.output
    report = json.loads(drift.stdout)
    assert report["summary"] == {"changed": 1, "deleted": 1, "added": 1}
    by_kind = {t["kind"]: t for t in report["targets"]}
    assert by_kind["changed"]["name"] == "Orders"
    assert by_kind["changed"]["changes"] == [
        {"path": "retryPolicy.maxRetries", "before": 5, "after": 9, "sensitive": False}
    ]
    assert by_kind["deleted"]["name"] == "Queue stats"
    assert by_kind["added"]["name"] == "Shadow"

    replan = _cxeb("plan", "-f", str(targets_file), "--output", "json")
    assert replan.exit_code == 2
    actions = {t["name"]: t["action"] for t in json.loads(replan.stdout)["targets"]}
    assert actions == {"Orders": "update", "Agent events": "unchanged", "Queue stats": "create"}
    assert json.loads(replan.stdout)["unmanaged"] == ["Shadow"]

    converged = _cxeb("apply", "-f", str(targets_file), "--yes", "--prune")
    assert converged.exit_code == 0, converged.output
    final = _cxeb("plan", "-f", str(targets_file), "--prune")
    assert final.exit_code == 0, final.output
    assert "No changes." in final.stdout


@pytest.mark.usefixtures("api_env")
def test_rotated_secret_in_the_file_is_a_sensitive_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new value for a referenced secret plans as a sensitive change, applies, and then plans clean."""
    targets_file = tmp_path / "targets.yaml"
    targets_file.write_text(TARGETS)
    assert _cxeb("apply", "-f", str(targets_file), "--yes").exit_code == 0
    monkeypatch.setenv("ORDERS_TOKEN", "rotated-token-do-not-print")
    monkeypatch.setenv("AGENT_SIGNING", generate_signing_secret())
    plan = _cxeb("plan", "-f", str(targets_file), "--output", "json")
    assert plan.exit_code == 2, plan.output
    changes = {t["name"]: [c["path"] for c in t["changes"]] for t in json.loads(plan.stdout)["targets"]}
    assert changes == {"Orders": ["authentication.value"], "Agent events": ["signingSecret"], "Queue stats": []}
    assert "rotated-token-do-not-print" not in plan.output
    assert _cxeb("apply", "-f", str(targets_file), "--yes").exit_code == 0
    assert _cxeb("plan", "-f", str(targets_file)).exit_code == 0


@pytest.mark.usefixtures("api_env")
def test_import_then_plan_shows_no_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Targets applied from one file, imported into another: planning the import shows no changes."""
    source = tmp_path / "targets.yaml"
    source.write_text(TARGETS)
    assert _cxeb("apply", "-f", str(source), "--yes").exit_code == 0
    imported = tmp_path / "imported.yaml"
    result = _cxeb("import", "--out", str(imported))
    assert result.exit_code == 0, result.output
    assert "CXEB_ORDERS_AUTH_VALUE" in result.stderr
    assert "${env:CXEB_AGENT_EVENTS_AUTH_VALUE}" in imported.read_text()
    plan = _cxeb("plan", "-f", str(imported), "--output", "json")
    assert plan.exit_code == 0, plan.output
    monkeypatch.setenv("CXEB_ORDERS_AUTH_VALUE", ORDERS_TOKEN)
    assert _cxeb("plan", "-f", str(imported)).exit_code == 0  # the right value compares equal
    monkeypatch.setenv("CXEB_ORDERS_AUTH_VALUE", "wrong")
    assert _cxeb("plan", "-f", str(imported)).exit_code == 2
    assert _cxeb("import", "--out", str(imported)).exit_code == 2  # exists, no --force


async def test_part_way_failure_reports_done_and_not_done_and_rerun_converges(sandbox: Any, tmp_path: Path) -> None:
    """A create that conflicts mid-run stops apply with done/failed/not-done; planning again and applying converges."""
    text = "\n".join(
        f"- name: T{n}\n  endpoint: https://hooks.example.com/t{n}\n  retryPolicy:\n    maxRetries: 4" for n in range(3)
    )
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    loaded = load_targets_file(path, environ={}, resolution=SecretResolution.AVAILABLE)
    seen: list[ObservedEvent] = []
    bus = ObserverBus()
    bus.subscribe(seen.append)
    async with _client(sandbox, bus) as client:
        remote = await read_remote(client, loaded.targets)
        plan = compute_plan(loaded.targets, remote.targets)
        # Someone creates T1 between plan and apply: its create answers 409.
        await client.targets.create(IntegrationTarget(name="T1", endpoint="https://hooks.example.com/other"))
        progress: list[tuple[str, bool]] = []
        report = await apply_plan(plan, client, progress=lambda item, step: progress.append((item.name, step.ok)))
        assert [s.name for s in report.done] == ["T0"]
        assert report.failed is not None
        assert report.failed.name == "T1"
        assert "already" in (report.failed.error or "")
        assert [i.name for i in report.not_done] == ["T2"]
        assert progress == [("T0", True), ("T1", False)]
        assert report.to_json()["notDone"] == [{"name": "T2", "action": "create"}]

        remote = await read_remote(client, loaded.targets)
        rerun = compute_plan(loaded.targets, remote.targets)
        assert [(i.name, i.action) for i in rerun.pending] == [("T1", Action.UPDATE), ("T2", Action.CREATE)]
        assert (await apply_plan(rerun, client)).ok
        final = compute_plan(loaded.targets, (await read_remote(client, loaded.targets)).targets)
        assert not final.has_changes
    applies = [e for e in seen if isinstance(e, TargetChanged) and e.action == "apply"]
    assert [(e.target, e.details["operation"]) for e in applies] == [
        ("T0", "create"),
        ("T1", "update"),
        ("T2", "create"),
    ]
    assert applies[1].details["fields"] == ["endpoint", "retryPolicy.maxRetries"]


@pytest.mark.usefixtures("api_env")
def test_plan_and_drift_errors_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invalid input and a missing API configuration exit 1 for plan and drift (2 means changes there)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nendpoint: http://plain.example.com\n")
    result = _cxeb("plan", "-f", str(bad))
    assert result.exit_code == 1
    assert "endpoint" in result.stderr
    state = tmp_path / "terraform.tfstate"
    state.write_text('{"version": 0}')
    drift = _cxeb("drift", "--state", str(state))
    assert drift.exit_code == 1
    assert "state format 0" in drift.stderr
    monkeypatch.delenv("CXONE_BASE_URL")
    good = tmp_path / "good.yaml"
    good.write_text("name: x\nendpoint: https://hooks.example.com/x\n")
    assert _cxeb("plan", "-f", str(good)).exit_code == 1


@pytest.mark.usefixtures("api_env")
def test_apply_refuses_unset_secret_before_any_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A create whose secret variable is unset exits 2 naming it, and creates nothing."""
    monkeypatch.delenv("ORDERS_TOKEN")
    targets_file = tmp_path / "targets.yaml"
    targets_file.write_text(TARGETS)
    result = _cxeb("apply", "-f", str(targets_file), "--yes")
    assert result.exit_code == 2
    assert "Orders: authentication.value" in result.stderr
    plan = _cxeb("plan", "-f", str(targets_file), "--output", "json")
    assert json.loads(plan.stdout)["summary"]["create"] == 3


async def test_without_the_routes_scope_signing_secrets_are_unknown(sandbox: Any, tmp_path: Path) -> None:
    """A client without event:route:read still plans: a declared signing secret is unknown, with a note."""
    path = tmp_path / "targets.yaml"
    path.write_text(f"name: Signed\nendpoint: https://hooks.example.com/s\nsigningSecret: {SIGNING}\n")
    loaded = load_targets_file(path, environ={}, resolution=SecretResolution.AVAILABLE)
    async with _client(sandbox) as client:
        await client.targets.create(loaded.targets[0])
    limited = sandbox.settings(scopes="integration:target:read integration:target:write")
    async with CXoneClient.from_settings(limited) as client:
        remote = await read_remote(client, loaded.targets)
    assert remote.signing_fingerprints is None
    assert "event:route:read" in remote.notes[0]
    (item,) = compute_plan(loaded.targets, remote.targets, signing_fingerprints=remote.signing_fingerprints).items
    assert item.action is Action.UNCHANGED
    assert item.unknown == ("signingSecret",)
