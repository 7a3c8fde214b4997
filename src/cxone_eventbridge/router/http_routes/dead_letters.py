"""``GET /v1/dead-letters`` (``?target=&limit=``), ``POST /v1/dead-letters/replay`` and ``.../purge``
(``{"target": ..., "deliveryIds": [...]}``, both optional); replays and purges are logged as operations.
A target is named by its name or control-plane id."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError, UnknownTargetError
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.router.queue import DeadLetter
from cxone_eventbridge.wire import iso_time, loads

routes = web.RouteTableDef()
_ops_log = logging.getLogger("cxone_eventbridge.operations")  # observe.operations_log's lines


def dead_letter_to_wire(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON (camelCase, times ISO-8601)."""
    return {
        "deliveryId": letter.delivery_id,
        "eventId": letter.event_id,
        "target": letter.target,
        "priority": letter.priority,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "lastStatus": letter.last_status,
        "lastError": letter.last_error,
        "acceptedAt": iso_time(letter.accepted_at),
        "deadAt": iso_time(letter.dead_at),
    }


def _log_operation(action: str, count: int, ids: list[str] | None, target: str | None) -> None:
    """One structured line per dead-letter replay or purge through the API."""
    scope = f"{len(ids)} named" if ids is not None else f"all of {target}" if target else "all"
    _ops_log.info(
        "dead letters: %s %d (%s)",
        "replayed" if action == "replay" else "purged",
        count,
        scope,
        extra={"operation": action, "target": target, "count": count, "named": None if ids is None else len(ids)},
    )


async def _target(request: web.Request, ref: str | None) -> str | None:
    """The target a selection names (name or id); a name the router no longer routes to is kept when it still
    has dead letters (a removed target's, replayable should it return); otherwise a 404 naming what it knows."""
    if ref is None:
        return None
    try:
        return context.of(request).router.resolve_target(ref)
    except UnknownTargetError:
        if await context.of(request).router.dead_letters(target=ref, limit=1):
            return ref
        return context.resolve_target(request, ref)  # the 404


@routes.get("/v1/dead-letters")
async def list_dead_letters(request: web.Request) -> web.Response:
    target = await _target(request, request.query.get("target") or None)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 10_000:
        raise IngestError(400, "invalid_limit", "limit must be an integer from 1 to 10000", [("limit", "")])
    letters = await context.of(request).router.dead_letters(target=target, limit=limit)
    return web.json_response({"items": [dead_letter_to_wire(d) for d in letters]})


async def _selection(request: web.Request) -> tuple[list[str] | None, str | None]:
    if not request.can_read_body:
        return None, None
    try:
        data = loads(await request.read() or b"{}")
    except ValueError as exc:
        raise IngestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise IngestError(422, "not_object", "the body must be a JSON object")
    ids, target = data.get("deliveryIds"), data.get("target")
    errors = []
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        errors.append(("deliveryIds", "must be an array of strings"))
    if target is not None and not isinstance(target, str):
        errors.append(("target", "must be a string"))
    if errors:
        raise IngestError(422, "invalid_body", "the selection is invalid", errors)
    return ids, await _target(request, target)


@routes.post("/v1/dead-letters/replay")
async def replay(request: web.Request) -> web.Response:
    ids, target = await _selection(request)
    count = await context.of(request).router.replay(delivery_ids=ids, target=target)
    _log_operation("replay", count, ids, target)
    return web.json_response({"replayed": count})


@routes.post("/v1/dead-letters/purge")
async def purge(request: web.Request) -> web.Response:
    ids, target = await _selection(request)
    count = await context.of(request).router.purge(delivery_ids=ids, target=target)
    _log_operation("purge", count, ids, target)
    return web.json_response({"purged": count})
