"""Drift: what changed on the server since a Terraform export. Pure, no I/O.

The exported state and the remote targets are both rendered by ``terraform.target_attributes`` and
compared by target id: an attribute that differs is an out-of-band change, a state resource missing
remotely was deleted, a remote target missing from the state was added. Server bookkeeping (status and
timestamps) is not drift. Secrets are compared by fingerprint and reported without values; a signing-secret
rotation shows as a sensitive ``signingSecret`` change, and its grace period as ``previousSigningSecret``
(fingerprint and expiry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic.alias_generators import to_camel

from cxone_eventbridge.iac.plan import AUTH_VALUE_PATH, SIGNING_SECRET_PATH, FieldChange
from cxone_eventbridge.iac.terraform import SERVER_MANAGED_ATTRIBUTES, state_resources, target_attributes
from cxone_eventbridge.models import IntegrationTarget

# Attributes newer exports carry: a state exported before them has no opinion on them, so no drift.
_ADDED_LATER = frozenset({"signing_secret_fingerprint", "previous_signing_secret"})


class DriftKind(StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"
    ADDED = "added"


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One target that is not as exported."""

    kind: DriftKind
    target_id: str
    name: str
    changes: tuple[FieldChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "id": self.target_id,
            "name": self.name,
            "changes": [change.to_json() for change in self.changes],
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every drifted target: changes and deletions in state order, then additions by name."""

    items: tuple[DriftItem, ...]
    checked: int  # targets in the state

    @property
    def has_drift(self) -> bool:
        return bool(self.items)

    def to_json(self) -> dict[str, Any]:
        counts = {kind.value: 0 for kind in DriftKind}
        for item in self.items:
            counts[item.kind.value] += 1
        return {
            "drift": self.has_drift,
            "checked": self.checked,
            "summary": counts,
            "targets": [item.to_json() for item in self.items],
        }


def detect_drift(state: Mapping[str, Any], remote: Iterable[IntegrationTarget], *, source: str) -> DriftReport:
    """Compare a parsed, version-checked state (``terraform.parse_state``) with the remote targets."""
    exported = state_resources(state, source=source)
    remote_by_id = {target.id: target for target in remote if target.id is not None}
    items: list[DriftItem] = []
    for target_id, attributes in exported.items():
        name = str(attributes.get("name", ""))
        current = remote_by_id.get(target_id)
        if current is None:
            items.append(DriftItem(DriftKind.DELETED, target_id, name))
            continue
        changes = attribute_changes(attributes, target_attributes(current))
        if changes:
            items.append(DriftItem(DriftKind.CHANGED, target_id, name, tuple(changes)))
    added = sorted((t for i, t in remote_by_id.items() if i not in exported), key=lambda t: t.name)
    items.extend(DriftItem(DriftKind.ADDED, str(t.id), t.name) for t in added)
    return DriftReport(items=tuple(items), checked=len(exported))


def attribute_changes(exported: Mapping[str, Any], current: Mapping[str, Any]) -> list[FieldChange]:
    """Attribute differences as wire-path changes (``retryPolicy.maxRetries``), secrets without values."""
    changes: list[FieldChange] = []
    before, after = _decoded(exported), _decoded(current)
    for key in sorted(set(before) | set(after)):
        if key in SERVER_MANAGED_ATTRIBUTES or (key in _ADDED_LATER and key not in before):
            continue
        _compare(before.get(key), after.get(key), _wire(key), changes)
    return changes


def _decoded(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes with their JSON-text fields (filter values, the pattern) as JSON values again."""
    decoded = dict(attributes)
    if isinstance(pattern := decoded.get("event_pattern"), str):
        decoded["event_pattern"] = _loads(pattern)
    filters = decoded.get("event_filters")
    if isinstance(filters, list):
        decoded["event_filters"] = [
            {**item, "value": _loads(item["value"])} if isinstance(item, dict) and "value" in item else item
            for item in filters
        ]
    return decoded


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a hand-edited state: compare the text as it is


def _wire(key: str) -> str:
    return to_camel(key) if "_" in key else key


# Objects whose keys are the user's own (pattern fields, variable names): compared whole, never renamed.
_USER_KEYED = ("eventPattern", "inputTransformer.inputPathsMap")


def _compare(before: Any, after: Any, path: str, changes: list[FieldChange]) -> None:
    if before == after:
        return
    if path == "authentication.valueFingerprint":
        changes.append(FieldChange(AUTH_VALUE_PATH, sensitive=True))
    elif path == "signingSecretFingerprint":
        changes.append(FieldChange(SIGNING_SECRET_PATH, sensitive=True))
    elif isinstance(before, dict) and isinstance(after, dict) and path not in _USER_KEYED:
        for key in sorted(set(before) | set(after)):
            _compare(before.get(key), after.get(key), f"{path}.{_wire(key)}", changes)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            _compare(old, new, f"{path}[{index}]", changes)
    else:
        changes.append(FieldChange(path, before, after))
