"""Drift: an exported state against the remote targets, by id; out-of-band changes, deletions, additions."""

from __future__ import annotations

import json
from collections.abc import Callable

from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.iac.drift import DriftKind, detect_drift
from cxone_eventbridge.iac.terraform import parse_state, render_state
from cxone_eventbridge.models import IntegrationTarget

RemoteFactory = Callable[..., IntegrationTarget]


def _state(targets: list[IntegrationTarget]) -> dict[str, object]:
    return parse_state(render_state(targets, lineage="l", serial=1), source="terraform.tfstate")


def test_no_drift_when_remote_matches_the_export(remote_target: RemoteFactory) -> None:
    """The targets that were exported, unchanged, are not drift."""
    targets = [remote_target("Orders"), remote_target("Billing", token=None)]
    report = detect_drift(_state(targets), targets, source="s")
    assert not report.has_drift
    assert report.checked == 2


def test_status_and_timestamps_are_not_drift(remote_target: RemoteFactory) -> None:
    """A server-side status change or a new updatedAt alone is bookkeeping, not drift."""
    exported = [remote_target("Orders")]
    now = [remote_target("Orders", status="failed", updatedAt="2030-01-01T00:00:00+00:00")]
    assert not detect_drift(_state(exported), now, source="s").has_drift


def test_out_of_band_changes_deletions_and_additions(remote_target: RemoteFactory) -> None:
    """A changed field, a rotated secret, a deleted target and a new one are each reported by wire path."""
    exported = [remote_target("Orders"), remote_target("Billing", token=None), remote_target("Agents")]
    remote = [
        remote_target("Orders", retryPolicy={"maxRetries": 9}, endpoint="https://hooks.example.com/moved"),
        remote_target(
            "Agents",
            authentication={"type": "bearer", "valueFingerprint": secret_fingerprint("tgt-agents", "rotated")},
        ),
        remote_target("Newcomer"),
    ]
    report = detect_drift(_state(exported), remote, source="s")
    kinds = [(item.kind, item.name) for item in report.items]
    assert kinds == [
        (DriftKind.CHANGED, "Agents"),
        (DriftKind.DELETED, "Billing"),
        (DriftKind.CHANGED, "Orders"),
        (DriftKind.ADDED, "Newcomer"),
    ]
    orders = report.items[2]
    assert {(c.path, c.before, c.after) for c in orders.changes} == {
        ("endpoint", "https://hooks.example.com/orders", "https://hooks.example.com/moved"),
        ("retryPolicy.maxRetries", 3, 9),
    }
    (rotation,) = report.items[0].changes
    assert rotation.path == "authentication.value"
    assert rotation.sensitive
    data = report.to_json()
    assert data["summary"] == {"changed": 2, "deleted": 1, "added": 1}
    assert secret_fingerprint("tgt-agents", "rotated") not in json.dumps(data)


def test_filter_changes_are_reported_per_element(remote_target: RemoteFactory) -> None:
    """A filter whose value changed is reported at eventFilters[0].value, as the JSON value (not the state's text)."""
    exported = [remote_target("Orders", eventFilters=[{"field": "a", "operator": "equals", "value": 1}])]
    remote = [remote_target("Orders", eventFilters=[{"field": "a", "operator": "equals", "value": 2}])]
    (item,) = detect_drift(_state(exported), remote, source="s").items
    assert [(c.path, c.before, c.after) for c in item.changes] == [("eventFilters[0].value", 1, 2)]


def test_pattern_changes_are_one_change_with_the_users_keys(remote_target: RemoteFactory) -> None:
    """An event pattern is compared whole: its keys are the user's own and are not renamed."""
    exported = [remote_target("Orders", eventPattern={"detail_type": ["a"]})]
    remote = [remote_target("Orders", eventPattern={"detail_type": ["b"]})]
    (item,) = detect_drift(_state(exported), remote, source="s").items
    assert [(c.path, c.before, c.after) for c in item.changes] == [
        ("eventPattern", {"detail_type": ["a"]}, {"detail_type": ["b"]})
    ]
