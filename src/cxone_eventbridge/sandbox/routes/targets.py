"""The integration targets: list (cursor pages), create (idempotent), get, replace, patch, delete, test.

Reads and writes are per tenant (the access token's client). Every answer that returns a target carries
its ``ETag``; replace, patch and delete honour ``If-Match``. The test call sends a signed synthetic event
through the SSRF guard and records whether the endpoint answered 2xx as the target's status.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from cxone_eventbridge.exceptions import FieldError
from cxone_eventbridge.models import (
    IntegrationTarget,
    SigningSecretRotation,
    TargetPage,
    TargetStatus,
    TargetTestResult,
    field_errors,
)
from cxone_eventbridge.sandbox import targets as ops
from cxone_eventbridge.sandbox.errors import SandboxHTTPError, not_found, validation_failed
from cxone_eventbridge.sandbox.oauth import Principal
from cxone_eventbridge.sandbox.routes.common import (
    IfMatch,
    ReadPrincipal,
    TestPrincipal,
    WritePrincipal,
    body_docs,
    error_docs,
    json_body,
)
from cxone_eventbridge.sandbox.state import SandboxState, state_of
from cxone_eventbridge.sandbox.store import (
    DuplicateIdempotencyKeyError,
    NameTakenError,
    StaleVersionError,
    StoredTarget,
)
from cxone_eventbridge.sandbox.tester import send_test_event

logger = logging.getLogger(__name__)

TARGETS_PATH = "/api/v2/integrations/targets"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_IDEMPOTENCY_KEY = 255
_CURSOR_PREFIX = "c1."

# A change computed from the stored target, the request body and the time now.
TargetChange = Callable[[IntegrationTarget, Any, float], IntegrationTarget]

_COMMON = error_docs(400, 401, 403, 413, 422, 429)

router = APIRouter(prefix=TARGETS_PATH, tags=["targets"])


def _etag(target_id: str, version: int) -> str:
    return f'"{target_id[-12:]}-{version}"'


def _target_response(state: SandboxState, stored: StoredTarget, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        ops.public_view(stored.target, now=state.clock()),
        status_code=status_code,
        headers={"ETag": _etag(stored.id, stored.version)},
    )


def _check_if_match(if_match: str | None, stored: StoredTarget) -> None:
    if if_match is None:
        return
    current = _etag(stored.id, stored.version)
    tags = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in tags and current not in tags:
        raise SandboxHTTPError(
            412,
            "precondition_failed",
            f"the target changed since that ETag (If-Match {if_match[:80]!r}; current ETag {current})",
            headers={"ETag": current},
        )


def _changed_meanwhile() -> SandboxHTTPError:
    return SandboxHTTPError(412, "precondition_failed", "the target changed while this request was being processed")


def _encode_cursor(seq: int) -> str:
    return f"{_CURSOR_PREFIX}{seq}"


def _decode_cursor(cursor: str) -> int:
    text = cursor.removeprefix(_CURSOR_PREFIX)
    if text == cursor or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise SandboxHTTPError(
            400,
            "invalid_cursor",
            "the cursor is not one this server issued; start again without a cursor",
            errors=[FieldError("cursor", "is not a valid cursor")],
        )
    return int(text)


def _load(state: SandboxState, principal: Principal, target_id: str) -> StoredTarget:
    stored = state.store.get(principal.tenant, target_id)
    if stored is None:
        raise not_found(target_id)
    return stored


def _conflict(name: str) -> SandboxHTTPError:
    return SandboxHTTPError(
        409,
        "conflict",
        f"a target named {name!r} already exists",
        errors=[FieldError("name", "is already used by another target")],
    )


def _request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(
    state: SandboxState, principal: Principal, key: str, request_hash: str, *, status_code: int = 201
) -> JSONResponse | None:
    record = state.store.idempotency_record(principal.tenant, key)
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise validation_failed(
            [FieldError("Idempotency-Key", "was already used with a different request body")],
            "this Idempotency-Key was already used with a different request body",
        )
    view = json.loads(record.response)
    headers = {"Idempotent-Replayed": "true"}
    if status_code == 201:
        headers["ETag"] = _etag(str(view.get("id", "")), 1)
    return JSONResponse(view, status_code=status_code, headers=headers)


async def _change_target(
    request: Request, principal: Principal, target_id: str, if_match: str | None, change: TargetChange
) -> JSONResponse:
    """What PUT and PATCH share: load, check If-Match, read the body, apply ``change``, store it."""
    state = state_of(request)
    stored = _load(state, principal, target_id)
    _check_if_match(if_match, stored)
    target = change(stored.target, await json_body(request), state.clock())
    try:
        updated = state.store.update(principal.tenant, target, expected_version=stored.version)
    except NameTakenError:
        raise _conflict(target.name) from None
    except StaleVersionError:
        raise _changed_meanwhile() from None
    return _target_response(state, updated)


def _replace(current: IntegrationTarget, body: Any, now: float) -> IntegrationTarget:
    return ops.replaced_target(current, ops.parse_target(body), now=now)


def _patch(current: IntegrationTarget, body: Any, now: float) -> IntegrationTarget:
    return ops.patched_target(current, body, now=now)


@router.get("", summary="List targets", responses={200: {"model": TargetPage}, **_COMMON})
async def list_targets(
    request: Request,
    principal: ReadPrincipal,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=100, description="Only the target with this name.")] = None,
) -> JSONResponse:
    state = state_of(request)
    after = _decode_cursor(cursor) if cursor is not None else 0
    rows = state.store.page(principal.tenant, after_seq=after, limit=limit + 1, name=name)
    page, more = rows[:limit], len(rows) > limit
    body = {
        "items": [ops.public_view(row.target, now=state.clock()) for row in page],
        "nextCursor": _encode_cursor(page[-1].seq) if more else None,
    }
    return JSONResponse(body)


@router.post(
    "",
    summary="Create a target",
    status_code=201,
    responses={201: {"model": IntegrationTarget}, **_COMMON, **error_docs(409, 415)},
    openapi_extra=body_docs("IntegrationTargetInput"),
)
async def create_target(
    request: Request,
    principal: WritePrincipal,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    ] = None,
) -> JSONResponse:
    state = state_of(request)
    body = await json_body(request)
    request_hash = _request_hash(body) if idempotency_key is not None else ""
    if idempotency_key is not None and (replayed := _replay(state, principal, idempotency_key, request_hash)):
        return replayed
    target = ops.new_target(ops.parse_target(body), now=state.clock())
    view = ops.public_view(target, now=state.clock())
    try:
        stored = state.store.insert(
            principal.tenant,
            target,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            response=json.dumps(view),
        )
    except NameTakenError:
        raise _conflict(target.name) from None
    except DuplicateIdempotencyKeyError:
        assert idempotency_key is not None
        replayed = _replay(state, principal, idempotency_key, request_hash)
        assert replayed is not None
        return replayed
    response = _target_response(state, stored, 201)
    response.headers["Location"] = f"{TARGETS_PATH}/{stored.id}"
    return response


@router.get(
    "/{target_id}",
    summary="Get a target",
    responses={200: {"model": IntegrationTarget}, **_COMMON, **error_docs(404)},
)
async def get_target(request: Request, principal: ReadPrincipal, target_id: str) -> JSONResponse:
    state = state_of(request)
    return _target_response(state, _load(state, principal, target_id))


@router.put(
    "/{target_id}",
    summary="Replace a target",
    responses={200: {"model": IntegrationTarget}, **_COMMON, **error_docs(404, 409, 412, 415)},
    openapi_extra=body_docs("IntegrationTargetInput"),
)
async def replace_target(
    request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
) -> JSONResponse:
    return await _change_target(request, principal, target_id, if_match, _replace)


@router.patch(
    "/{target_id}",
    summary="Change some fields of a target (JSON merge patch)",
    responses={200: {"model": IntegrationTarget}, **_COMMON, **error_docs(404, 409, 412, 415)},
    openapi_extra=body_docs("TargetPatchInput"),
)
async def patch_target(
    request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
) -> JSONResponse:
    return await _change_target(request, principal, target_id, if_match, _patch)


@router.delete(
    "/{target_id}",
    summary="Delete a target",
    status_code=204,
    responses={**_COMMON, **error_docs(404, 412)},
)
async def delete_target(
    request: Request, principal: WritePrincipal, target_id: str, if_match: IfMatch = None
) -> Response:
    state = state_of(request)
    stored = _load(state, principal, target_id)
    _check_if_match(if_match, stored)
    try:
        state.store.delete(principal.tenant, target_id, expected_version=stored.version)
    except StaleVersionError:
        raise _changed_meanwhile() from None
    return Response(status_code=204)


@router.post(
    "/{target_id}/rotate-secret",
    summary="Rotate the signing secret, signing with the old one too for a grace period",
    responses={
        200: {
            "model": IntegrationTarget,
            "description": "The rotated target; ``signingSecret`` is present (once) when the server generated it.",
        },
        **_COMMON,
        **error_docs(404, 412, 415),
    },
    openapi_extra=body_docs("SigningSecretRotationInput"),
)
async def rotate_secret(
    request: Request,
    principal: WritePrincipal,
    target_id: str,
    if_match: IfMatch = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    ] = None,
) -> JSONResponse:
    state = state_of(request)
    body = await json_body(request)
    # The path is part of the hash: one key must not stand for a create and a rotation alike.
    request_hash = _request_hash({"rotate": target_id, "body": body}) if idempotency_key is not None else ""
    if idempotency_key is not None and (
        replayed := _replay(state, principal, idempotency_key, request_hash, status_code=200)
    ):
        return replayed  # the answer to a rotation already done: rotating again would drop the grace secret
    stored = _load(state, principal, target_id)
    _check_if_match(if_match, stored)
    if not isinstance(body, dict):
        raise validation_failed([FieldError("", "the body must be a JSON object")])
    try:
        rotation = SigningSecretRotation.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(field_errors(exc)) from None
    rotated, generated = ops.rotated_target(stored.target, rotation, now=state.clock())
    view = ops.public_view(rotated, now=state.clock())
    if generated is not None:
        view["signingSecret"] = generated.get_secret_value()  # shown once, to the caller who rotated
    try:
        updated = state.store.update(
            principal.tenant,
            rotated,
            expected_version=stored.version,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            response=json.dumps(view),
        )
    except StaleVersionError:
        raise _changed_meanwhile() from None
    except DuplicateIdempotencyKeyError:
        assert idempotency_key is not None
        replayed = _replay(state, principal, idempotency_key, request_hash, status_code=200)
        assert replayed is not None
        return replayed
    return JSONResponse(view, headers={"ETag": _etag(updated.id, updated.version), "Cache-Control": "no-store"})


@router.post(
    "/{target_id}/test",
    summary="Send a synthetic test event to the target's endpoint",
    responses={
        200: {"model": TargetTestResult, "description": "The endpoint answered 2xx."},
        502: {"model": TargetTestResult, "description": "The endpoint answered non-2xx, refused or is forbidden."},
        504: {"model": TargetTestResult, "description": "The endpoint did not answer within timeoutMs."},
        **_COMMON,
        **error_docs(404),
    },
)
async def test_target(request: Request, principal: TestPrincipal, target_id: str) -> JSONResponse:
    state = state_of(request)
    stored = _load(state, principal, target_id)
    outcome = await send_test_event(
        stored.target,
        policy=state.egress,
        ssl_context=state.ssl_context,
        clock=state.clock,
        resolver=state.resolver,
    )
    if stored.target.status != TargetStatus.DISABLED:
        status = TargetStatus.ACTIVE if outcome.result.passed else TargetStatus.FAILED
        # Re-read: the target may have changed while the test was in flight; then the result is stale.
        latest = state.store.get(principal.tenant, target_id)
        if latest is not None and latest.version == stored.version and latest.target.status != status:
            changed = latest.target.model_copy(
                update={"status": status, "updated_at": dt.datetime.fromtimestamp(state.clock(), dt.UTC)}
            )
            try:
                state.store.update(principal.tenant, changed, expected_version=latest.version)
            except StaleVersionError:
                logger.info("target %s changed during its test; status left as is", target_id)
    return JSONResponse(outcome.result.to_wire(), status_code=outcome.http_status)
