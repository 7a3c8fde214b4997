"""The export as Terraform itself reads it: `terraform state list`, terraform_remote_state, config parsing.

Skipped where no `terraform` binary is installed. No provider is downloaded: the state is read by
Terraform's core, and the consumer configuration uses only the built-in terraform_remote_state source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cxone_eventbridge.iac.export import export_terraform
from cxone_eventbridge.models import IntegrationTarget

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")

RemoteFactory = Callable[..., IntegrationTarget]


@pytest.fixture
def terraform(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run terraform with an empty CLI config, no update checks and its data under tmp_path."""
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }
    binary = shutil.which("terraform")
    assert binary is not None

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    return run


@pytest.fixture
def exported(tmp_path: Path, remote_target: RemoteFactory) -> Path:
    """An export of three targets (one with an awkward name) into tmp_path/export."""
    targets = [
        remote_target("Orders", token="orders-token"),
        remote_target("Queue events (prod)", token=None, target_id="6b0d2f0e-queue"),
        remote_target("2nd agent feed", token="agent-token"),
    ]
    out = tmp_path / "export"
    export_terraform(out, targets)
    return out


def test_terraform_state_list_lists_every_target(
    exported: Path, terraform: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """`terraform state list -state=...` accepts the exported state and lists each target's address."""
    result = terraform("state", "list", f"-state={exported / 'terraform.tfstate'}", cwd=exported.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "cxone_integration_target.orders",
        "cxone_integration_target.queue_events_prod",
        "cxone_integration_target.t_2nd_agent_feed",
    ]


def test_terraform_refuses_a_version_zero_state(
    tmp_path: Path, terraform: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """The tutorial's version-0 state is refused by the same command (so the test above can fail)."""
    state = tmp_path / "terraform.tfstate"
    state.write_text(json.dumps({"version": 0, "serial": 1, "resources": []}))
    result = terraform("state", "list", f"-state={state}", cwd=tmp_path)
    assert result.returncode != 0


def test_terraform_remote_state_consumer_reads_target_ids(
    exported: Path, tmp_path: Path, terraform: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """A configuration with the built-in terraform_remote_state (local backend) reads every id from the outputs."""
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    config = {
        "data": {
            "terraform_remote_state": {
                "cxone": {"backend": "local", "config": {"path": str(exported / "terraform.tfstate")}}
            }
        },
        "output": {
            "ids": {"value": "${data.terraform_remote_state.cxone.outputs.target_ids}"},
            "orders": {"value": "${data.terraform_remote_state.cxone.outputs.orders_id}"},
        },
    }
    (consumer / "main.tf.json").write_text(json.dumps(config))
    init = terraform("init", "-input=false", "-no-color", cwd=consumer)
    assert init.returncode == 0, init.stderr
    apply = terraform("apply", "-auto-approve", "-input=false", "-no-color", cwd=consumer)
    assert apply.returncode == 0, apply.stderr
    output = terraform("output", "-json", cwd=consumer)
    assert output.returncode == 0, output.stderr
    values = json.loads(output.stdout)
    assert values["ids"]["value"] == {
        "2nd agent feed": "tgt-2nd-agent-feed",
        "Orders": "tgt-orders",
        "Queue events (prod)": "6b0d2f0e-queue",
    }
    assert values["orders"]["value"] == "tgt-orders"


def test_terraform_parses_the_exported_configuration(
    exported: Path, terraform: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    """`terraform providers` parses main.tf.json (resources, import blocks, outputs) and finds nice/cxone."""
    result = terraform("providers", "-no-color", cwd=exported)
    assert result.returncode == 0, result.stderr
    assert "registry.terraform.io/nice/cxone" in result.stdout
