"""Apply: perform a plan with the control-plane client, one target at a time.

- Creates send the whole target with an ``Idempotency-Key`` derived from this run and the target's name,
  so a create retried by the client (or resent after a lost answer) never makes a second target.
- Updates PATCH (JSON merge patch) only the top-level fields the plan found changed: fields the file does
  not manage are never sent, so the server keeps them. ``retryPolicy`` is sent whole, merged over the
  remote one; ``authentication`` is sent with its type, header name and (when known) value.
- Deletions (``--prune``) come last.
- The client paces requests (``Settings.rate_limit_per_minute``) and retries what is retryable.
- Each step done is published as a ``TargetChanged`` record with action ``apply`` on the client's observer
  bus (the audit log), besides the client's own create/patch/delete records.
- The first failure stops the run: the report says what was done, what failed and what was not done.
  Re-running plans from the remote state as it then is, so it converges.

Every secret a step needs is checked before the first request: an unset variable is an input error that
names it, and nothing is changed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cxone_eventbridge import secret_refs
from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.exceptions import APIError, FieldError, InputError
from cxone_eventbridge.iac.plan import AUTH_VALUE_PATH, Action, Plan, TargetPlan
from cxone_eventbridge.models import OAUTH_SECRET_PATH, AuthType, IntegrationTarget

Progress = Callable[[TargetPlan, "StepResult"], None]


@dataclass(frozen=True, slots=True)
class StepResult:
    """One target's step: done (with the resulting id) or failed (with the error's message)."""

    name: str
    action: Action
    target_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action.value, "id": self.target_id, "error": self.error}


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What a run did: steps done, the step that failed (if any), and the steps not attempted."""

    done: tuple[StepResult, ...]
    failed: StepResult | None = None
    not_done: tuple[TargetPlan, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "done": [step.to_json() for step in self.done],
            "failed": self.failed.to_json() if self.failed else None,
            "notDone": [{"name": item.name, "action": item.action.value} for item in self.not_done],
        }


def check_secrets_available(plan: Plan, unresolved: dict[str, list[str]]) -> None:
    """Raise InputError naming every secret a step must send whose variable is unset."""
    errors: list[FieldError] = []
    for item in plan.pending:
        missing = set(unresolved.get(item.name, ()))
        if not missing:
            continue
        if item.action is Action.CREATE:
            needed = missing
        elif item.action is Action.UPDATE:
            # A patch of the same auth type keeps the stored value; a new type needs one.
            type_changes = any(change.path == "authentication.type" for change in item.changes)
            needed = {path for path in missing if path in (AUTH_VALUE_PATH, OAUTH_SECRET_PATH) and type_changes}
        else:
            needed = set()
        errors.extend(
            FieldError(f"{item.name}: {path}", "its environment variable is not set; apply must send it")
            for path in sorted(needed)
        )
    if errors:
        raise InputError("apply cannot send secrets it does not have; nothing was changed", errors)


def patch_body(item: TargetPlan) -> dict[str, Any]:
    """The PATCH body for an update: each changed top-level field, objects sent whole."""
    desired, remote = item.desired, item.remote
    assert desired is not None
    assert remote is not None
    wire = desired.to_wire(reveal_secrets=True)
    body: dict[str, Any] = {}
    for key in dict.fromkeys(change.top_level_key for change in item.changes):
        if key == "authentication":
            body[key] = _authentication_body(desired)
        elif key == "retryPolicy":
            merged = remote.retry_policy.model_copy(
                update={name: getattr(desired.retry_policy, name) for name in desired.retry_policy.model_fields_set}
            )
            body[key] = merged.to_wire()
        else:
            body[key] = wire[key]
    return body


def _authentication_body(target: IntegrationTarget) -> dict[str, Any]:
    """The whole authentication object, secret included when known.

    Under merge-patch semantics an unsent value is kept when the type stays, and a new type starts from
    scratch (``check_secrets_available`` made sure a value is known then).
    """
    auth = target.authentication
    body: dict[str, Any] = {"type": auth.type.value}
    if auth.type is AuthType.API_KEY:
        body["headerName"] = auth.header_name
    if auth.oauth is not None:
        body["oauth"] = {k: v for k, v in auth.oauth.to_wire().items() if k != "clientSecret"}
    secret = auth.secret
    if auth.type is not AuthType.NONE and secret is not None:
        text = secret.get_secret_value()
        if not secret_refs.is_reference(text):
            if auth.oauth is not None:
                body["oauth"]["clientSecret"] = text
            else:
                body["value"] = text
    return body


async def apply_plan(
    plan: Plan,
    client: CXoneClient,
    *,
    progress: Progress | None = None,
    run_id: str | None = None,
) -> ApplyReport:
    """Perform the plan's pending steps in order (deletions last), stopping at the first failure."""
    run_id = run_id or uuid.uuid4().hex
    steps = [i for i in plan.pending if i.action is not Action.DELETE]
    steps += [i for i in plan.pending if i.action is Action.DELETE]
    done: list[StepResult] = []
    for index, item in enumerate(steps):
        try:
            target_id = await _perform(item, client, run_id)
        except (APIError, InputError) as exc:
            failed = StepResult(item.name, item.action, item.target_id, error=str(exc))
            if progress is not None:
                progress(item, failed)
            return ApplyReport(done=tuple(done), failed=failed, not_done=tuple(steps[index + 1 :]))
        result = StepResult(item.name, item.action, target_id)
        done.append(result)
        details: dict[str, Any] = {"operation": item.action.value, "runId": run_id}
        if item.action is Action.UPDATE:
            details["fields"] = sorted({change.path for change in item.changes})  # paths only, never values
        client.publish_change("apply", target=item.name, target_id=target_id, details=details)
        if progress is not None:
            progress(item, result)
    return ApplyReport(done=tuple(done))


async def _perform(item: TargetPlan, client: CXoneClient, run_id: str) -> str | None:
    if item.action is Action.CREATE:
        assert item.desired is not None
        # A header value must be ASCII: the name enters the key as a digest.
        name_digest = hashlib.sha256(item.name.encode()).hexdigest()[:16]
        created = await client.targets.create(item.desired, idempotency_key=f"cxeb-apply-{run_id}-{name_digest}")
        return created.id
    assert item.target_id is not None
    if item.action is Action.UPDATE:
        updated = await client.targets.patch(item.target_id, patch_body(item))
        return updated.id
    await client.targets.delete(item.target_id, name=item.name)
    return item.target_id
