"""Terraform rendering and export: state format 4, lineage and serial rules, no secrets, deterministic files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.iac.export import export_terraform
from cxone_eventbridge.iac.terraform import (
    parse_state,
    render_config,
    render_export,
    render_state,
    resource_names,
    state_resources,
)
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _lineages() -> Iterator[str]:
    for n in range(1, 100):
        yield f"00000000-0000-4000-8000-{n:012d}"


@pytest.fixture
def targets(remote_target: RemoteFactory) -> list[IntegrationTarget]:
    """Three remote targets, one of them holding secrets in memory as the routes table returns them."""
    with_secrets = remote_target(
        "Billing ${x}",
        token=None,
        authentication={"type": "api_key", "value": "api-key-value-123", "headerName": "X-Key"},
        signingSecret=SIGNING,
        eventFilters=[{"field": "type", "operator": "in", "value": ["a", "b"]}],
    )
    return [remote_target("Orders", token="orders-token"), with_secrets, remote_target("2nd queue", token=None)]


def test_state_is_format_4_with_outputs_and_marked_secrets(targets: list[IntegrationTarget]) -> None:
    """The state has version 4, terraform_version 1.5.0, one resource per target, id outputs and sensitive paths."""
    state = json.loads(render_state(targets, lineage="lin", serial=3))
    assert state["version"] == 4
    assert state["terraform_version"] == "1.5.0"
    assert (state["serial"], state["lineage"]) == (3, "lin")
    assert [r["name"] for r in state["resources"]] == ["t_2nd_queue", "billing_x", "orders"]
    assert state["outputs"]["target_ids"] == {
        "value": {"2nd queue": "tgt-2nd-queue", "Billing ${x}": "tgt-billing-${x}", "Orders": "tgt-orders"},
        "type": ["map", "string"],
    }
    assert state["outputs"]["orders_id"] == {"value": "tgt-orders", "type": "string"}
    instance = state["resources"][1]["instances"][0]
    assert instance["sensitive_attributes"] == [
        [{"type": "get_attr", "value": "authentication"}, {"type": "get_attr", "value": "value"}],
        [{"type": "get_attr", "value": "signing_secret"}],
    ]
    assert instance["attributes"]["authentication"]["value"] is None
    assert instance["attributes"]["signing_secret"] is None
    assert instance["attributes"]["event_filters"] == [{"field": "type", "operator": "in", "value": '["a","b"]'}]


def test_no_secret_text_is_written_anywhere(targets: list[IntegrationTarget], tmp_path: Path) -> None:
    """Neither file contains an authentication value or a signing secret, even when the models hold them."""
    export_terraform(tmp_path, targets, new_lineage=lambda: "lin")
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert "api-key-value-123" not in text
        assert SIGNING not in text


def test_config_requires_provider_and_imports_each_target(targets: list[IntegrationTarget]) -> None:
    """main.tf.json requires nice/cxone, declares one resource and one import block per target, secrets as variables."""
    config = json.loads(render_config(targets))
    assert config["terraform"]["required_providers"] == {"cxone": {"source": "nice/cxone"}}
    assert config["import"] == [
        {"to": "cxone_integration_target.t_2nd_queue", "id": "tgt-2nd-queue"},
        {"to": "cxone_integration_target.billing_x", "id": "tgt-billing-$${x}"},
        {"to": "cxone_integration_target.orders", "id": "tgt-orders"},
    ]
    resources = config["resource"]["cxone_integration_target"]
    assert sorted(resources) == ["billing_x", "orders", "t_2nd_queue"]
    assert resources["billing_x"]["name"] == "Billing $${x}"  # literal, not a template
    assert resources["orders"]["authentication"] == {"type": "bearer", "value": "${var.orders_auth_value}"}
    assert config["variable"]["orders_auth_value"]["sensitive"] is True
    assert "authentication" in resources["t_2nd_queue"]
    assert "value" not in resources["t_2nd_queue"]["authentication"]


def test_resource_names_are_unique_identifiers() -> None:
    """Names that fold to the same identifier get a stable hash suffix; digits and symbols are made safe."""
    targets = [
        IntegrationTarget(id=f"id-{n}", name=name, endpoint="https://x.example.com")
        for n, name in enumerate(["Orders!", "orders", "9 lives", "###", "target ids"])
    ]
    names = resource_names(targets)
    assert len(set(names.values())) == 5
    assert names["orders"] == "orders"
    assert names["Orders!"].startswith("orders_")
    assert names["9 lives"] == "t_9_lives"
    assert names["###"] == "target"
    assert names["target ids"] == "target_ids"
    for value in names.values():
        assert value[0].isalpha()
        assert value.replace("_", "").isalnum()


def test_same_targets_give_byte_identical_files_and_keep_serial(
    targets: list[IntegrationTarget], tmp_path: Path
) -> None:
    """A second export of the same targets writes nothing: same bytes, same serial, same mtime, no extra files."""
    lineages = _lineages()
    first = export_terraform(tmp_path, targets, new_lineage=lambda: next(lineages))
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    second = export_terraform(tmp_path, list(reversed(targets)), new_lineage=lambda: next(lineages))
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert sorted(before) == ["main.tf.json", "terraform.tfstate"]
    assert after == before
    assert first.identity == second.identity
    assert first.identity.serial == 1
    assert (second.state_written, second.config_written) == (False, False)


def test_changed_content_raises_serial_and_keeps_lineage(
    targets: list[IntegrationTarget], tmp_path: Path, remote_target: RemoteFactory
) -> None:
    """A changed target raises the serial by one; the lineage of the directory's state is kept."""
    lineages = _lineages()
    first = export_terraform(tmp_path, targets, new_lineage=lambda: next(lineages))
    changed = [*targets[1:], remote_target("Orders", token="orders-token", endpoint="https://hooks.example.com/v2")]
    second = export_terraform(tmp_path, changed, new_lineage=lambda: next(lineages))
    assert second.identity.lineage == first.identity.lineage
    assert second.identity.serial == 2
    assert second.state_written
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    assert (state["serial"], state["lineage"]) == (2, first.identity.lineage)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.tf.json", "terraform.tfstate"]


def test_a_fresh_directory_gets_a_uuid_lineage(targets: list[IntegrationTarget], tmp_path: Path) -> None:
    """Without an injected factory the lineage is a UUID; the state file is private to its owner."""
    result = export_terraform(tmp_path / "new" / "dir", targets)
    lineage = json.loads(result.state_path.read_text())["lineage"]
    assert len(lineage) == 36
    assert lineage.count("-") == 4
    assert os.stat(result.state_path).st_mode & 0o077 == 0


def test_terraform_version_can_be_chosen_and_is_checked(targets: list[IntegrationTarget]) -> None:
    """A chosen terraform_version is written; one that is not a version is an input error."""
    rendered = render_export(targets, existing_state=None, new_lineage=lambda: "l", terraform_version="1.11.0")
    assert json.loads(rendered.state_text)["terraform_version"] == "1.11.0"
    with pytest.raises(InputError, match="terraform-version"):
        render_state(targets, lineage="l", serial=1, terraform_version="latest")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": 0, "serial": 1, "lineage": "x", "resources": []}', "state format 0 is not supported"),
        ("{not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"version": 4, "serial": 1, "lineage": ""}', "lineage"),
        ('{"version": 4, "serial": -1, "lineage": "x"}', "serial"),
    ],
)
def test_existing_state_that_is_not_ours_is_refused(text: str, message: str, tmp_path: Path) -> None:
    """An existing file that is not a version-4 state is an input error naming it, and it is left untouched."""
    path = tmp_path / "terraform.tfstate"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        export_terraform(tmp_path, [], new_lineage=lambda: "l")
    assert str(path) in str(info.value)
    assert path.read_text() == text


def test_state_round_trips_through_parse(targets: list[IntegrationTarget]) -> None:
    """parse_state and state_resources read back every target's attributes by id."""
    state = parse_state(render_state(targets, lineage="l", serial=1), source="s")
    found = state_resources(state, source="s")
    assert sorted(found) == ["tgt-2nd-queue", "tgt-billing-${x}", "tgt-orders"]
    assert found["tgt-orders"]["endpoint"] == "https://hooks.example.com/orders"


def test_targets_without_ids_or_with_duplicate_names_are_refused(remote_target: RemoteFactory) -> None:
    """Only remote targets (with ids and unique names) can be exported."""
    with pytest.raises(InputError, match="no id"):
        render_state([IntegrationTarget(name="a", endpoint="https://a.example.com")], lineage="l", serial=1)
    with pytest.raises(InputError, match="two remote targets"):
        render_state([remote_target("a", target_id="1"), remote_target("a", target_id="2")], lineage="l", serial=1)


def test_empty_export_is_valid(tmp_path: Path) -> None:
    """No targets still gives a valid state (empty map output) and a config with only the provider requirement."""
    export_terraform(tmp_path, [], new_lineage=lambda: "l")
    state = json.loads((tmp_path / "terraform.tfstate").read_text())
    assert state["resources"] == []
    assert state["outputs"] == {"target_ids": {"value": {}, "type": ["map", "string"]}}
    config = json.loads((tmp_path / "main.tf.json").read_text())
    assert "import" not in config
    assert "resource" not in config
