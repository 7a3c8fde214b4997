"""The plan: desired targets (from a real targets file) against remote targets, by name, field by field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cxone_eventbridge.cli.iac_steps import _change_lines
from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.iac.plan import Action, FieldChange, Plan, compute_plan
from cxone_eventbridge.iac.targets_file import LoadedTargets, SecretResolution, load_targets_file
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> LoadedTargets:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_targets_file(path, environ=environ or {}, resolution=SecretResolution.AVAILABLE)


def _plan(
    loaded: LoadedTargets,
    remote: list[IntegrationTarget],
    *,
    prune: bool = False,
    signing_fingerprints: dict[str, str | None] | None = None,
) -> Plan:
    return compute_plan(
        loaded.targets,
        remote,
        unresolved=loaded.unresolved,
        prune=prune,
        signing_fingerprints=signing_fingerprints,
    )


ORDERS = """\
- name: Orders
  endpoint: https://hooks.example.com/orders
  authentication:
    type: bearer
    value: ${env:ORDERS_TOKEN}
"""


def test_absent_target_is_created_with_its_fields_and_no_secret_text(tmp_path: Path) -> None:
    """A target missing remotely is a create listing the fields the file sets; the secret shows as sensitive only."""
    plan = _plan(_load(tmp_path, ORDERS, {"ORDERS_TOKEN": "s3cr3t-token"}), [])
    (item,) = plan.items
    assert item.action is Action.CREATE
    paths = {c.path: c for c in item.changes}
    assert paths["endpoint"].after == "https://hooks.example.com/orders"
    assert paths["authentication.type"].after == "bearer"
    assert paths["authentication.value"].sensitive
    assert plan.has_changes
    assert plan.summary() == {"create": 1, "update": 0, "delete": 0, "unchanged": 0}
    assert "s3cr3t-token" not in json.dumps(plan.to_json())
    assert "s3cr3t-token" not in repr(plan)


def test_matching_target_with_same_secret_is_unchanged(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """Same fields and a secret whose fingerprint matches the remote one: no changes."""
    remote = remote_target("Orders", token="s3cr3t-token")
    plan = _plan(_load(tmp_path, ORDERS, {"ORDERS_TOKEN": "s3cr3t-token"}), [remote])
    assert [i.action for i in plan.items] == [Action.UNCHANGED]
    assert not plan.has_changes


def test_fields_the_file_omits_are_not_changes(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """Remote retry policy, description and filters the file does not mention stay as they are."""
    remote = remote_target(
        "Orders",
        token="t",
        description="set by hand",
        retryPolicy={"maxRetries": 7, "backoffStrategy": "fixed", "timeoutMs": 9000},
        eventFilters=[{"field": "type", "operator": "equals", "value": "x"}],
    )
    plan = _plan(_load(tmp_path, ORDERS, {"ORDERS_TOKEN": "t"}), [remote])
    assert not plan.has_changes


def test_update_lists_each_changed_field_by_wire_path(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """An endpoint, a retry setting and a filter operator that differ show up as separate wire-path changes."""
    remote = remote_target(
        "Orders",
        token="t",
        retryPolicy={"maxRetries": 3, "timeoutMs": 5000},
        eventFilters=[{"field": "type", "operator": "equals", "value": "x"}],
    )
    text = ORDERS.replace("/orders", "/orders-v2") + (
        "  retryPolicy:\n    maxRetries: 5\n"
        "  eventFilters:\n    - field: type\n      operator: prefix\n      value: x\n"
    )
    plan = _plan(_load(tmp_path, text, {"ORDERS_TOKEN": "t"}), [remote])
    (item,) = plan.items
    assert item.action is Action.UPDATE
    assert item.target_id == remote.id
    changes = {c.path: (c.before, c.after) for c in item.changes}
    assert changes == {
        "endpoint": ("https://hooks.example.com/orders", "https://hooks.example.com/orders-v2"),
        "retryPolicy.maxRetries": (3, 5),
        "eventFilters[0].operator": ("equals", "prefix"),
    }


def test_changed_secret_is_a_sensitive_change_without_values(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """A secret whose fingerprint differs is a change whose JSON carries no value, old or new."""
    remote = remote_target("Orders", token="old-token")
    plan = _plan(_load(tmp_path, ORDERS, {"ORDERS_TOKEN": "new-token"}), [remote])
    (item,) = plan.items
    assert item.action is Action.UPDATE
    (change,) = item.changes
    assert change.path == "authentication.value"
    assert change.to_json() == {
        "path": "authentication.value",
        "before": "(sensitive)",
        "after": "(sensitive)",
        "sensitive": True,
    }
    text = json.dumps(plan.to_json())
    assert "new-token" not in text
    assert secret_fingerprint(str(remote.id), "new-token") not in text


def test_unset_secret_variable_is_unknown_not_a_change(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """A ${env:...} reference whose variable is unset is reported as unknown and the plan shows no change."""
    remote = remote_target("Orders", token="whatever")
    plan = _plan(_load(tmp_path, ORDERS, {}), [remote])
    (item,) = plan.items
    assert item.action is Action.UNCHANGED
    assert item.unknown == ("authentication.value",)
    assert not plan.has_changes


def test_remote_only_targets_are_deleted_only_with_prune(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """A remote target absent from the file is left alone (listed as unmanaged) unless prune is asked for."""
    loaded = _load(tmp_path, ORDERS, {"ORDERS_TOKEN": "t"})
    remote = [remote_target("Orders", token="t"), remote_target("Zeta"), remote_target("Alpha")]
    kept = _plan(loaded, remote)
    assert kept.unmanaged == ("Alpha", "Zeta")
    assert not kept.has_changes
    pruned = _plan(loaded, remote, prune=True)
    assert [(i.name, i.action) for i in pruned.items] == [
        ("Orders", Action.UNCHANGED),
        ("Alpha", Action.DELETE),
        ("Zeta", Action.DELETE),
    ]
    assert pruned.items[1].target_id == "tgt-alpha"
    assert pruned.unmanaged == ()


@pytest.mark.parametrize(
    ("fingerprints", "expected_action", "expected_unknown"),
    [
        ("same", Action.UNCHANGED, ()),
        ("other", Action.UPDATE, ()),
        ("none-on-server", Action.UPDATE, ()),
        ("not-known", Action.UNCHANGED, ("signingSecret",)),
    ],
)
def test_signing_secret_is_compared_by_supplied_fingerprint(
    tmp_path: Path,
    remote_target: RemoteFactory,
    fingerprints: str,
    expected_action: Action,
    expected_unknown: tuple[str, ...],
) -> None:
    """A declared signing secret is compared with the routes-table fingerprint; without one it is unknown."""
    remote = remote_target("Orders", token=None)
    target_id = str(remote.id)
    mapping: dict[str, str | None] | None = {
        "same": {target_id: secret_fingerprint(target_id, SIGNING)},
        "other": {target_id: secret_fingerprint(target_id, "whsec_b3RoZXItc2VjcmV0LXZhbHVlLTEyMzQ1Njc4")},
        "none-on-server": {target_id: None},
        "not-known": None,
    }[fingerprints]
    text = "name: Orders\nendpoint: https://hooks.example.com/orders\nsigningSecret: ${env:SIGNING}\n"
    plan = _plan(_load(tmp_path, text, {"SIGNING": SIGNING}), [remote], signing_fingerprints=mapping)
    (item,) = plan.items
    assert item.action is expected_action
    assert item.unknown == expected_unknown
    if expected_action is Action.UPDATE:
        assert [c.path for c in item.changes] == ["signingSecret"]
        assert item.changes[0].sensitive
    assert SIGNING not in json.dumps(plan.to_json())


def test_filter_list_of_another_length_is_one_change(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """Adding a filter replaces the whole list, shown as one eventFilters change."""
    remote = remote_target("Orders", token=None)
    text = (
        "name: Orders\nendpoint: https://hooks.example.com/orders\neventFilters:\n  - {field: type, operator: exists}\n"
    )
    plan = _plan(_load(tmp_path, text), [remote])
    (change,) = plan.items[0].changes
    assert change.path == "eventFilters"
    assert change.before == []
    assert change.after == [{"field": "type", "operator": "exists", "value": True}]


def test_plan_json_is_stable_for_pipelines(tmp_path: Path, remote_target: RemoteFactory) -> None:
    """The JSON form has a summary, one entry per target in file order, and the unmanaged names."""
    text = ORDERS + "- name: Billing\n  endpoint: https://hooks.example.com/billing\n"
    plan = _plan(_load(tmp_path, text, {"ORDERS_TOKEN": "t"}), [remote_target("Orders", token="t")])
    data = plan.to_json()
    assert data["changes"] is True
    assert [(t["name"], t["action"]) for t in data["targets"]] == [("Orders", "unchanged"), ("Billing", "create")]
    assert data["summary"] == {"create": 1, "update": 0, "delete": 0, "unchanged": 1}


def test_a_pattern_change_is_a_line_diff_in_one_key_order() -> None:
    """Before (the API's key order) and after (sorted) print in the same key order, as a unified line diff:
    a one-key change is one '-' and one '+' line, every other line unmarked context."""
    before = {"source": ["cxone"], "eventType": ["call.abandoned"], "detail": {"queue": ["sales"]}}
    after = {"detail": {"queue": ["sales"]}, "eventType": ["call.answered"], "source": ["cxone"]}
    lines = _change_lines(FieldChange("eventPattern", before, after), Action.UPDATE)
    assert lines[0] == "eventPattern:"
    changed = [line for line in lines[1:] if line.startswith(("  -", "  +"))]
    assert changed == ['  -    "call.abandoned"', '  +    "call.answered"']
    body = [line[3:] for line in lines[1:] if not line.startswith("  -")]
    assert json.loads("\n".join(body)) == after  # the context and '+' lines are the whole new pattern
