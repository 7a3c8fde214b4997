"""Plan: what ``apply`` would change to make the remote targets match a targets file. Pure, no I/O.

Targets are matched by name. A field the file omits is not managed by the file: the server's value stands
(its default at creation) and is never a change. That includes ``signingSecret``: an omitted one keeps the
remote secret.

Secrets are compared by fingerprint and never carried into the plan's output:

- ``authentication.value`` against the remote ``authentication.valueFingerprint``;
- ``signingSecret`` against a fingerprint the caller supplies per target id (``signing_fingerprints``). The
  targets routes never return a signing secret, so the caller computes them from the routes table (the one
  place secrets are read back, scope ``event:route:read``); without them a declared signing secret is
  "unknown".

A secret whose ``${env:NAME}`` variable is unset is "unknown": listed, not a change. A remote signing
secret in a rotation's grace period is shown (``previousSigningSecret``: its expiry only): a file
that still declares the old secret would end the overlap at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic.alias_generators import to_camel

from cxone_eventbridge import secret_refs
from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.models import OAUTH_SECRET_PATH, IntegrationTarget

SENSITIVE = "(sensitive)"
AUTH_VALUE_PATH = "authentication.value"
SIGNING_SECRET_PATH = "signingSecret"  # noqa: S105 -- a field path, not a secret
# Set by the server: never part of a plan (the targets file loader refuses them).
_SERVER_FIELDS = frozenset(
    {"id", "status", "created_at", "updated_at", "signing_secret_fingerprint", "previous_signing_secret"}
)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs, by wire path. A sensitive change carries no values."""

    path: str
    before: Any = None
    after: Any = None
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.sensitive:
            return {"path": self.path, "before": SENSITIVE, "after": SENSITIVE, "sensitive": True}
        return {"path": self.path, "before": self.before, "after": self.after, "sensitive": False}

    @property
    def top_level_key(self) -> str:
        """The top-level wire key this change belongs to (``retryPolicy`` for ``retryPolicy.maxRetries``)."""
        return self.path.split(".", 1)[0].split("[", 1)[0]


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """What happens to one target."""

    name: str
    action: Action
    target_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    unknown: tuple[str, ...] = ()
    desired: IntegrationTarget | None = field(default=None, repr=False, compare=False)
    remote: IntegrationTarget | None = field(default=None, repr=False, compare=False)

    @property
    def previous_signing_secret(self) -> dict[str, Any] | None:
        """When the remote's rotated-out signing secret stops signing, if a grace period is running.

        Only the expiry: a plan prints no secret, not even a fingerprint.
        """
        previous = self.remote.previous_signing_secret if self.remote is not None else None
        if previous is None:
            return None
        return {"expiresAt": previous.to_wire()["expiresAt"]}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action.value,
            "id": self.target_id,
            "changes": [change.to_json() for change in self.changes],
            "unknown": list(self.unknown),
            "previousSigningSecret": self.previous_signing_secret,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Every target's plan: the file's targets in file order, then deletions by name."""

    items: tuple[TargetPlan, ...]
    unmanaged: tuple[str, ...] = ()  # remote targets absent from the file, left alone without --prune

    @property
    def has_changes(self) -> bool:
        return any(item.action is not Action.UNCHANGED for item in self.items)

    @property
    def pending(self) -> tuple[TargetPlan, ...]:
        return tuple(item for item in self.items if item.action is not Action.UNCHANGED)

    def summary(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for item in self.items:
            counts[item.action.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": self.has_changes,
            "summary": self.summary(),
            "targets": [item.to_json() for item in self.items],
            "unmanaged": list(self.unmanaged),
        }


def compute_plan(
    desired: Sequence[IntegrationTarget],
    remote: Iterable[IntegrationTarget],
    *,
    unresolved: Mapping[str, Sequence[str]] | None = None,
    signing_fingerprints: Mapping[str, str | None] | None = None,
    prune: bool = False,
) -> Plan:
    """Diff the desired targets against the remote ones.

    ``unresolved`` maps a target name to the wire paths of its secrets whose variables are unset (the
    targets file loader's ``LoadedTargets.unresolved``). ``signing_fingerprints`` maps a remote target id
    to the fingerprint of its current signing secret (None when it has none); an id absent from it makes
    a declared signing secret "unknown".
    """
    unresolved = unresolved or {}
    remote_by_name: dict[str, IntegrationTarget] = {}
    for target in remote:
        remote_by_name.setdefault(target.name, target)
    items: list[TargetPlan] = []
    for target in desired:
        unknown_paths = tuple(unresolved.get(target.name, ()))
        current = remote_by_name.get(target.name)
        if current is None:
            items.append(
                TargetPlan(
                    name=target.name,
                    action=Action.CREATE,
                    changes=tuple(_creation_changes(target, unknown_paths)),
                    unknown=unknown_paths,
                    desired=target,
                )
            )
            continue
        changes, unknown = _diff(target, current, unknown_paths, signing_fingerprints)
        items.append(
            TargetPlan(
                name=target.name,
                action=Action.UPDATE if changes else Action.UNCHANGED,
                target_id=current.id,
                changes=tuple(changes),
                unknown=tuple(unknown),
                desired=target,
                remote=current,
            )
        )
    declared = {target.name for target in desired}
    leftovers = sorted(name for name in remote_by_name if name not in declared)
    if prune:
        for name in leftovers:
            current = remote_by_name[name]
            items.append(TargetPlan(name=name, action=Action.DELETE, target_id=current.id, remote=current))
        leftovers = []
    return Plan(items=tuple(items), unmanaged=tuple(leftovers))


def _wire_name(field_name: str) -> str:
    return to_camel(field_name) if "_" in field_name else field_name


def _creation_changes(target: IntegrationTarget, unknown: Sequence[str]) -> list[FieldChange]:
    """Every field the file sets, as ``null -> value`` leaves; secrets marked sensitive."""
    wire = target.model_dump(mode="json", by_alias=True, exclude_unset=True)
    changes: list[FieldChange] = []
    for path, value in _leaves(wire, ""):
        if path == "name":
            continue  # the plan's row already names the target
        if path in (AUTH_VALUE_PATH, OAUTH_SECRET_PATH, SIGNING_SECRET_PATH):
            if path not in unknown:
                changes.append(FieldChange(path, sensitive=True))
            continue
        changes.append(FieldChange(path, None, value))
    return changes


def _leaves(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and path != "eventPattern" and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    else:
        yield path, value


def _diff(
    desired: IntegrationTarget,
    remote: IntegrationTarget,
    unresolved: Sequence[str],
    signing_fingerprints: Mapping[str, str | None] | None,
) -> tuple[list[FieldChange], list[str]]:
    changes: list[FieldChange] = []
    unknown: list[str] = list(unresolved)
    desired_wire = desired.to_wire()
    remote_wire = remote.to_wire()
    for name in type(desired).model_fields:
        if name in _SERVER_FIELDS or name not in desired.model_fields_set:
            continue
        key = _wire_name(name)
        if name == "authentication":
            changes.extend(_diff_authentication(desired, remote, unknown))
        elif name == "retry_policy":
            for sub in desired.retry_policy.model_fields_set:
                sub_key = _wire_name(sub)
                before, after = remote_wire[key][sub_key], desired_wire[key][sub_key]
                if before != after:
                    changes.append(FieldChange(f"{key}.{sub_key}", before, after))
        elif name == "event_filters":
            changes.extend(_diff_list(key, remote_wire[key], desired_wire[key]))
        elif name == "input_transformer" and desired_wire[key] is not None and remote_wire[key] is not None:
            for sub in ("inputPathsMap", "inputTemplate"):  # the map's keys are the user's: compared whole
                if remote_wire[key][sub] != desired_wire[key][sub]:
                    changes.append(FieldChange(f"{key}.{sub}", remote_wire[key][sub], desired_wire[key][sub]))
        elif name == "signing_secret":
            change = _diff_signing_secret(desired, remote, unknown, signing_fingerprints)
            if change is not None:
                changes.append(change)
        elif desired_wire[key] != remote_wire[key]:
            changes.append(FieldChange(key, remote_wire[key], desired_wire[key]))
    return changes, unknown


def _diff_authentication(
    desired: IntegrationTarget, remote: IntegrationTarget, unknown: list[str]
) -> list[FieldChange]:
    changes: list[FieldChange] = []
    want, have = desired.authentication, remote.authentication
    for sub in ("type", "header_name"):
        if sub in want.model_fields_set and getattr(want, sub) != getattr(have, sub):
            before, after = getattr(have, sub), getattr(want, sub)
            changes.append(FieldChange(f"authentication.{_wire_name(sub)}", _plain(before), _plain(after)))
    if "oauth" in want.model_fields_set and want.oauth is not None:
        wanted = want.oauth.to_wire()
        current = have.oauth.to_wire() if have.oauth is not None else {}
        for key, after in wanted.items():
            if key != "clientSecret" and current.get(key) != after:
                changes.append(FieldChange(f"authentication.oauth.{key}", current.get(key), after))
    secret_path = want.secret_path
    if secret_path in unknown or want.secret is None:
        return changes
    text = want.secret.get_secret_value()
    if secret_refs.is_reference(text):
        unknown.append(secret_path)
        return changes
    if remote.id is None or have.value_fingerprint != secret_fingerprint(remote.id, text):
        changes.append(FieldChange(secret_path, sensitive=True))
    return changes


def _diff_signing_secret(
    desired: IntegrationTarget,
    remote: IntegrationTarget,
    unknown: list[str],
    signing_fingerprints: Mapping[str, str | None] | None,
) -> FieldChange | None:
    if desired.signing_secret is None or SIGNING_SECRET_PATH in unknown:
        return None  # an explicit null means "keep the remote secret", as an omitted one does
    text = desired.signing_secret.get_secret_value()
    if (
        secret_refs.is_reference(text)
        or signing_fingerprints is None
        or remote.id is None
        or remote.id not in signing_fingerprints
    ):
        unknown.append(SIGNING_SECRET_PATH)
        return None
    if signing_fingerprints[remote.id] != secret_fingerprint(remote.id, text):
        return FieldChange(SIGNING_SECRET_PATH, sensitive=True)
    return None


def _diff_list(key: str, before: list[Any], after: list[Any]) -> list[FieldChange]:
    """Element by element when the lengths match (``eventFilters[0].operator``), else the whole list."""
    if len(before) != len(after):
        return [FieldChange(key, before, after)]
    changes: list[FieldChange] = []
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in [*new, *(k for k in old if k not in new)]:
                if old.get(sub) != new.get(sub):
                    changes.append(FieldChange(f"{key}[{index}].{sub}", old.get(sub), new.get(sub)))
        else:
            changes.append(FieldChange(f"{key}[{index}]", old, new))
    return changes


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value
