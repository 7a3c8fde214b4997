"""``POST /v1/events``: one object, an array or NDJSON; ``?priority=0-9`` (default 5) -> 202 ``{accepted, ids}``.

A request is accepted or rejected whole, and 202 comes only after the queue's durable commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError, InputError, QueueClosedError, QueueError, QueueFullError
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.router.ingest_body import parse_events_stepwise
from cxone_eventbridge.router.queue import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY

routes = web.RouteTableDef()


def parse_priority(value: str | None) -> int:
    """``?priority=`` as an int in 0..9; 400 naming ``priority`` otherwise."""
    if value is None:
        return DEFAULT_PRIORITY
    try:
        priority = int(value)
    except ValueError:
        priority = -1
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise IngestError(
            400,
            "invalid_priority",
            f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}",
            [("priority", f"got {value!r}")],
        )
    return priority


@routes.post("/v1/events")
async def ingest(request: web.Request) -> web.Response:
    api = context.of(request)
    config = api.config
    if api.draining:
        raise IngestError(503, "shutting_down", "the router is shutting down; retry against another instance")
    priority = parse_priority(request.query.get("priority"))
    length = request.content_length
    if length is not None and length > config.max_request_bytes:
        raise IngestError(
            413, "request_too_large", f"the request is {length} bytes; the limit is {config.max_request_bytes}"
        )
    try:
        async with asyncio.timeout(config.body_timeout_s):
            body = await request.read()
    except TimeoutError:
        raise IngestError(
            408, "request_timeout", f"the body did not arrive within {config.body_timeout_s:g} seconds"
        ) from None
    steps = parse_events_stepwise(
        body,
        content_type=request.content_type,
        max_event_bytes=config.max_event_bytes,
        max_events=config.max_events_per_request,
    )
    while True:
        try:
            next(steps)
        except StopIteration as done:
            events: list[dict[str, Any]] = done.value
            break
        await asyncio.sleep(0)  # a step is ~64 KiB of JSON text: other requests run in between
    try:
        ids = await api.router.ingest(events, priority=priority)
    except QueueFullError:
        raise IngestError(503, "queue_full", "the queue's storage is full; nothing was accepted") from None
    except QueueClosedError:
        raise IngestError(503, "shutting_down", "the router is shutting down; nothing was accepted") from None
    except QueueError:
        # The database is down or failed mid-commit: nothing is acknowledged, the client retries
        # (with the same ids, deduplicated) against this or another router.
        raise IngestError(503, "queue_unavailable", "the queue cannot be reached; nothing was accepted") from None
    except InputError as exc:
        errors = [(e.field, e.message) for e in exc.errors]
        raise IngestError(422, "invalid_event", exc.message, errors, counted=True) from None
    return web.json_response({"accepted": len(ids), "ids": ids}, status=202)
