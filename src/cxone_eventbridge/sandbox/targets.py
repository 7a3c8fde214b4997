"""What the targets routes do to a target, apart from HTTP: create, replace, merge-patch, show.

Secrets are write-only here. A response carries ``authentication.value: null`` with a ``valueFingerprint``
and no signing secret (its ``signingSecretFingerprint`` instead). A replace without ``signingSecret`` keeps
the current one; a replace that sends back the read form (value null, the current fingerprint) keeps the
current authentication value.

Rotation with overlap (``rotated_target``): the new secret becomes current and the replaced one is kept as
``previousSigningSecret`` until its grace period ends; routers sign with both meanwhile. A replace that
sets a different signing secret is an immediate cut-over and ends any grace period.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from cxone_eventbridge import signing
from cxone_eventbridge.exceptions import FieldError
from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.models import (
    IntegrationTarget,
    PreviousSigningSecret,
    SigningSecretRotation,
    TargetAuthentication,
    TargetStatus,
    field_errors,
)
from cxone_eventbridge.sandbox.errors import validation_failed

MAX_JSON_DEPTH = 32
_SERVER_FIELDS = ("id", "createdAt", "updatedAt")
# Objects whose keys a PATCH may spell in snake_case; eventPattern's keys are the user's own and stay as sent.
_NESTED_OBJECTS = ("authentication", "retryPolicy", "inputTransformer")


def json_depth_exceeded(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON value nests deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_target(body: Any) -> IntegrationTarget:
    """The request body as a target, or a 422 naming every invalid field."""
    if not isinstance(body, dict):
        raise validation_failed([FieldError("", "the body must be a JSON object (a target)")])
    try:
        return IntegrationTarget.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(field_errors(exc)) from None


def _now(clock_value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock_value, dt.UTC)


def _requested_status(requested: TargetStatus | None, current: TargetStatus | None) -> TargetStatus:
    # Only "disabled" is the client's to set; the others follow tests, and re-enabling needs a new test.
    if requested is None:
        return current or TargetStatus.PENDING
    if requested == TargetStatus.DISABLED:
        return TargetStatus.DISABLED
    if current is None or current == TargetStatus.DISABLED:
        return TargetStatus.PENDING
    return current


def new_target(request: IntegrationTarget, *, now: float) -> IntegrationTarget:
    """A target to insert: server id, status and timestamps, a signing secret when none was given."""
    auth = request.authentication
    if auth.type != "none" and auth.secret is None:
        raise validation_failed([FieldError(auth.secret_path, "is required when creating a target")])
    created = _now(now)
    return request.model_copy(
        update={
            "id": f"tgt_{uuid.uuid4().hex}",
            "status": _requested_status(request.status, None),
            "created_at": created,
            "updated_at": created,
            "signing_secret": request.signing_secret or SecretStr(signing.generate_signing_secret()),
            "signing_secret_fingerprint": None,
            "previous_signing_secret": None,  # set by a rotation only
            "authentication": _stored_auth(request.authentication, None),
        }
    )


def _stored_auth(requested: TargetAuthentication, current: IntegrationTarget | None) -> TargetAuthentication:
    """The authentication to store: the sent secret, or the current one when the read form came back."""
    if requested.secret is not None or requested.type == "none":
        return requested.model_copy(update={"value_fingerprint": None})
    current_auth = current.authentication if current is not None else None
    if (
        current is not None
        and current_auth is not None
        and current_auth.type == requested.type
        and current_auth.secret is not None
        and requested.value_fingerprint == public_fingerprint(current)
    ):
        return requested.with_secret(current_auth.secret).model_copy(update={"value_fingerprint": None})
    raise validation_failed(
        [
            FieldError(
                "authentication.valueFingerprint",
                f"does not match the current authentication value; send {requested.secret_path}",
            )
        ]
    )


def replaced_target(current: IntegrationTarget, request: IntegrationTarget, *, now: float) -> IntegrationTarget:
    """The target after a PUT: everything from the request, server fields and unsent secrets kept."""
    if request.id is not None and request.id != current.id:
        raise validation_failed([FieldError("id", "does not match the id in the path")])
    auth = _stored_auth(request.authentication, current)
    status = _requested_status(request.status, current.status)
    delivery_changed = request.endpoint != current.endpoint or auth != current.authentication
    if delivery_changed and status != TargetStatus.DISABLED:
        status = TargetStatus.PENDING  # the last test no longer speaks for this endpoint
    secret = request.signing_secret or current.signing_secret
    previous = current.previous_signing_secret
    if _secret_text(secret) != _secret_text(current.signing_secret):
        previous = None  # an explicit new secret cuts over at once; overlap is the rotate-secret operation
    return request.model_copy(
        update={
            "id": current.id,
            "status": status,
            "created_at": current.created_at,
            "updated_at": _now(now),
            "signing_secret": secret,
            "signing_secret_fingerprint": None,
            "previous_signing_secret": previous,
            "authentication": auth,
        }
    )


def _secret_text(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def rotated_target(
    current: IntegrationTarget, rotation: SigningSecretRotation, *, now: float
) -> tuple[IntegrationTarget, SecretStr | None]:
    """The target after a rotation, and the new secret when the server generated it (shown once).

    The replaced secret stays valid for ``gracePeriodSeconds``; a grace period of 0 cuts over at once.
    A rotation during another one's grace period replaces that older secret (two secrets at most).
    """
    generated = None if rotation.signing_secret is not None else SecretStr(signing.generate_signing_secret())
    new_secret = rotation.signing_secret or generated
    previous = None
    if current.signing_secret is not None and rotation.grace_period_seconds > 0:
        expires = _now(now) + dt.timedelta(seconds=rotation.grace_period_seconds)
        previous = PreviousSigningSecret(secret=current.signing_secret, expires_at=expires)
    rotated = current.model_copy(
        update={"signing_secret": new_secret, "previous_signing_secret": previous, "updated_at": _now(now)}
    )
    return rotated, generated


def _camel_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(k) if isinstance(k, str) and "_" in k else k: v for k, v in data.items()}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def patched_target(current: IntegrationTarget, patch: Any, *, now: float) -> IntegrationTarget:
    """The target after a merge patch over its current form (secrets included, so unsent ones stay)."""
    if not isinstance(patch, dict):
        raise validation_failed([FieldError("", "the body must be a JSON object (the fields to change)")])
    changes = _camel_keys(patch)
    for key in _NESTED_OBJECTS:
        if isinstance(changes.get(key), dict):
            changes[key] = _camel_keys(changes[key])
    if "signingSecret" in changes and changes["signingSecret"] is None:
        del changes["signingSecret"]  # null keeps the current secret, as an absent one does; rotation is explicit
    base = current.to_wire(reveal_secrets=True)
    for key in _SERVER_FIELDS:
        base.pop(key, None)
    auth_change = changes.get("authentication")
    if (
        isinstance(auth_change, dict)
        and auth_change.get("type", base["authentication"]["type"]) != (base["authentication"]["type"])
    ):
        base["authentication"] = {}  # a new type starts from scratch: the old header name or value do not fit
    merged = _merge_patch(base, changes)
    request = parse_target(merged)
    return replaced_target(current, request, now=now)


def public_fingerprint(target: IntegrationTarget) -> str | None:
    """The fingerprint of the target's authentication secret (value or OAuth client secret), as responses show it."""
    value = target.authentication.secret
    if target.id is None or value is None:
        return None
    return secret_fingerprint(target.id, value.get_secret_value())


def _signing_fingerprints(target: IntegrationTarget, wire: dict[str, Any], now: float) -> None:
    """Fill in the signing secrets' fingerprints; a previous secret whose grace period ended is left out."""
    secret = target.signing_secret
    wire["signingSecretFingerprint"] = (
        secret_fingerprint(target.id, secret.get_secret_value()) if target.id and secret is not None else None
    )
    previous = target.previous_signing_secret
    if previous is None or not previous.active_at(now) or previous.secret is None or target.id is None:
        wire["previousSigningSecret"] = None
        return
    wire["previousSigningSecret"]["fingerprint"] = secret_fingerprint(target.id, previous.secret.get_secret_value())


def public_view(target: IntegrationTarget, *, now: float) -> dict[str, Any]:
    """A target as the targets routes show it: no secret, fingerprints instead."""
    wire = target.to_wire()
    wire["authentication"]["valueFingerprint"] = public_fingerprint(target)
    wire.pop("signingSecret", None)
    _signing_fingerprints(target, wire, now)
    return wire


def routes_view(target: IntegrationTarget, *, now: float) -> dict[str, Any]:
    """A target as the routes table serves it to routers: every secret included (a live previous one too)."""
    wire = target.to_wire(reveal_secrets=True)
    wire["authentication"]["valueFingerprint"] = public_fingerprint(target)
    _signing_fingerprints(target, wire, now)
    return wire
