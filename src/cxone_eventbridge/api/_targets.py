"""``client.targets``: create, read, list, update, patch, delete and test integration targets.

Ids are positional, everything else keyword-only; every method returns models. Secrets are sent (create,
update) but never read back: responses carry fingerprints instead (see the contract in ARCHITECTURE.md).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from pydantic import BaseModel, SecretStr, ValidationError

from cxone_eventbridge import secret_refs
from cxone_eventbridge.api._errors import parse_model
from cxone_eventbridge.exceptions import InputError, InternalServerError, NotFoundError
from cxone_eventbridge.models import (
    DEFAULT_GRACE_PERIOD_S,
    IntegrationTarget,
    SigningSecretRotation,
    TargetPage,
    TargetTestResult,
    field_errors,
)

if TYPE_CHECKING:
    from cxone_eventbridge.api._client import CXoneClient

TARGETS_PATH = "/api/v2/integrations/targets"
# The test endpoint answers 502 (the endpoint failed) or 504 (it timed out) with a result body.
_FAILED_TEST_STATUSES = frozenset({502, 504})
_SERVER_SET = ("id", "status", "createdAt", "updatedAt", "signingSecretFingerprint", "previousSigningSecret")


class VersionedTarget(NamedTuple):
    """A target with the ``ETag`` it was read at: pass ``etag`` as ``update(..., if_match=)``."""

    target: IntegrationTarget
    etag: str | None


class RotatedSecret(NamedTuple):
    """What ``rotate_secret`` did: the target (fingerprints only) and the new secret if the server made it.

    ``generated`` is the only time a generated secret is ever shown: give it to the receiver now.
    """

    target: IntegrationTarget
    generated: SecretStr | None


class CreateAndTestResult(NamedTuple):
    """What ``create_and_test`` did: the target (as it stands after the test) and the test's result."""

    target: IntegrationTarget
    test: TargetTestResult


def _target_path(target_id: str) -> str:
    if not isinstance(target_id, str) or not target_id:
        raise InputError("a target id must be a non-empty string")
    return f"{TARGETS_PATH}/{quote(target_id, safe='')}"


def request_body(target: IntegrationTarget) -> dict[str, Any]:
    """The JSON a create or update sends: secrets revealed, server-set fields and nulls left out.

    A secret that is still a ``${env:NAME}`` reference was never resolved: sending it would configure a
    webhook whose password is the literal text ``${env:NAME}``, so it is refused here.
    """
    for path, secret in (
        (target.authentication.secret_path, target.authentication.secret),
        ("signingSecret", target.signing_secret),
    ):
        if secret is not None and (name := secret_refs.reference_name(secret.get_secret_value())) is not None:
            raise InputError(f"{path} is the unresolved reference ${{env:{name}}}; resolve it before sending")
    body = target.to_wire(reveal_secrets=True)
    for key in _SERVER_SET:
        body.pop(key, None)
    body = {key: value for key, value in body.items() if value is not None}
    body["authentication"] = {
        key: value for key, value in body["authentication"].items() if value is not None and key != "valueFingerprint"
    }
    return body


def _jsonable(value: Any) -> Any:
    """Patch values as JSON: secrets revealed (a patch is a write), models in their wire form."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        to_wire = getattr(value, "to_wire", None)
        return to_wire(reveal_secrets=True) if to_wire else value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class TargetsResource:
    """The ``/api/v2/integrations/targets`` routes."""

    def __init__(self, client: CXoneClient) -> None:
        self._client = client

    async def create(self, target: IntegrationTarget, *, idempotency_key: str | None = None) -> IntegrationTarget:
        """Create a target. A retried create reuses one ``Idempotency-Key``, so it never makes two."""
        response = await self._client.request(
            "POST", TARGETS_PATH, json=request_body(target), idempotency_key=idempotency_key
        )
        created = parse_model(IntegrationTarget, response)
        self._client.publish_change("create", target=created.name, target_id=created.id)
        return created

    async def get(self, target_id: str) -> IntegrationTarget:
        """One target by id (secrets as fingerprints)."""
        response = await self._client.request("GET", _target_path(target_id))
        return parse_model(IntegrationTarget, response)

    async def get_versioned(self, target_id: str) -> VersionedTarget:
        """One target and its ``ETag``, for a read-modify-write that must not overwrite someone else's change."""
        response = await self._client.request("GET", _target_path(target_id))
        return VersionedTarget(parse_model(IntegrationTarget, response), response.headers.get("ETag"))

    async def list(self, *, page_size: int | None = None, name: str | None = None) -> AsyncIterator[IntegrationTarget]:
        """Every target (or those named ``name``), fetched page by page as the iteration needs them."""
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {}
            if page_size is not None:
                params["limit"] = page_size
            if name is not None:
                params["name"] = name
            if cursor:
                params["cursor"] = cursor
            response = await self._client.request("GET", TARGETS_PATH, params=params or None)
            page = parse_model(TargetPage, response)
            for item in page.items:
                yield item
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    async def update(
        self, target_id: str, target: IntegrationTarget, *, if_match: str | None = None
    ) -> IntegrationTarget:
        """Replace a target (PUT). ``if_match`` makes it fail with 412 if someone changed it meanwhile.

        Leaving ``signingSecret`` out keeps the current one; rotation is explicit.
        """
        headers = {"If-Match": if_match} if if_match else None
        response = await self._client.request(
            "PUT", _target_path(target_id), json=request_body(target), headers=headers
        )
        updated = parse_model(IntegrationTarget, response)
        self._client.publish_change(
            "update", target=updated.name, target_id=updated.id, details={"ifMatch": if_match is not None}
        )
        return updated

    async def patch(self, target_id: str, changes: Mapping[str, Any]) -> IntegrationTarget:
        """Change some fields (PATCH, wire-form keys such as ``retryPolicy``)."""
        if not changes:
            raise InputError("a patch needs at least one field to change")
        response = await self._client.request("PATCH", _target_path(target_id), json=_jsonable(changes))
        patched = parse_model(IntegrationTarget, response)
        # Field names only: the values may be secrets.
        self._client.publish_change(
            "patch", target=patched.name, target_id=patched.id, details={"fields": sorted(map(str, changes))}
        )
        return patched

    async def rotate_secret(
        self,
        target_id: str,
        *,
        secret: str | None = None,
        grace_period_s: int = DEFAULT_GRACE_PERIOD_S,
        if_match: str | None = None,
        name: str | None = None,
    ) -> RotatedSecret:
        """Rotate the signing secret; deliveries carry the old secret's signature too for ``grace_period_s``.

        Without ``secret`` the server generates one and returns it once (``RotatedSecret.generated``). The
        request carries one ``Idempotency-Key`` across its retries: a rotation whose answer was lost is
        answered again, not done twice (a second rotation would end the first one's grace period).
        """
        if secret is not None and (ref := secret_refs.reference_name(secret)) is not None:
            raise InputError(f"signingSecret is the unresolved reference ${{env:{ref}}}; resolve it before sending")
        try:
            rotation = SigningSecretRotation(
                signing_secret=SecretStr(secret) if secret is not None else None, grace_period_seconds=grace_period_s
            )
        except ValidationError as exc:
            raise InputError("invalid secret rotation", field_errors(exc)) from None
        headers = {"If-Match": if_match} if if_match else None
        body = {k: v for k, v in rotation.to_wire(reveal_secrets=True).items() if v is not None}
        response = await self._client.request(
            "POST", f"{_target_path(target_id)}/rotate-secret", json=body, headers=headers
        )
        rotated = parse_model(IntegrationTarget, response)
        generated = rotated.signing_secret if secret is None else None
        # The read form: the secret shown once travels in ``generated`` only.
        rotated = rotated.model_copy(update={"signing_secret": None})
        self._client.publish_change(
            "rotate-secret",
            target=name or rotated.name,
            target_id=target_id,
            details={"gracePeriodSeconds": grace_period_s, "generated": secret is None},
        )
        return RotatedSecret(rotated, generated)

    async def delete(self, target_id: str, *, name: str | None = None) -> None:
        """Delete a target. ``name`` only labels the change for observers (the audit log)."""
        await self._client.request("DELETE", _target_path(target_id))
        self._client.publish_change("delete", target=name or target_id, target_id=target_id)

    async def test(self, target_id: str, *, name: str | None = None) -> TargetTestResult:
        """Send one synthetic event to the target's endpoint; a failed test is a result, not an error.

        Never retried: a retry would send a second synthetic event.
        """
        response = await self._client.request(
            "POST", f"{_target_path(target_id)}/test", retry=False, accept_statuses=_FAILED_TEST_STATUSES
        )
        if response.status_code in _FAILED_TEST_STATUSES:
            try:
                result = TargetTestResult.model_validate(response.json())
            except ValueError as exc:  # a gateway's own 502, not the test's answer
                raise InternalServerError(
                    f"POST {response.request.url.path} failed with HTTP {response.status_code} and no test result",
                    status_code=response.status_code,
                ) from exc
        else:
            result = parse_model(TargetTestResult, response)
        self._client.publish_change(
            "test",
            target=name or target_id,
            target_id=target_id,
            details={"result": result.result.value, "statusCode": result.status_code},
        )
        return result

    async def find_by_name(self, name: str) -> IntegrationTarget | None:
        """The target with this exact name, or None."""
        # ``name`` narrows the listing on servers that support it; the check below keeps it exact on any.
        async for target in self.list(name=name):
            if target.name == name:
                return target
        return None

    async def resolve(self, id_or_name: str) -> IntegrationTarget:
        """A target by id, else by name (what the CLI's ``ID|NAME`` arguments mean)."""
        try:
            return await self.get(id_or_name)
        except NotFoundError as exc:
            found = await self.find_by_name(id_or_name)
            if found is None:
                raise NotFoundError(
                    f"no target has the id or name {id_or_name!r}", status_code=404, request_id=exc.request_id
                ) from None
            return found

    async def create_and_test(self, target: IntegrationTarget) -> CreateAndTestResult:
        """The tutorial's flow: create the target, test it, and return it with the status the test left."""
        created = await self.create(target)
        assert created.id is not None
        result = await self.test(created.id, name=created.name)
        return CreateAndTestResult(target=await self.get(created.id), test=result)

    async def list_all(self, *, page_size: int | None = None) -> builtins.list[IntegrationTarget]:
        """Every target, as a list."""
        return [target async for target in self.list(page_size=page_size)]
