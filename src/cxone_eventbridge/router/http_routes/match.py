"""``POST /v1/match``: one event, a dry run against the live table -> ``{matched, deliveries: [{target,
contentType, body}]}``; nothing is queued."""

from __future__ import annotations

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError, InvalidEventError
from cxone_eventbridge.preview import preview
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.wire import loads

routes = web.RouteTableDef()


@routes.post("/v1/match")
async def match(request: web.Request) -> web.Response:
    """The targets an event reaches and what each would receive."""
    api = context.of(request)
    length = request.content_length
    if length is not None and length > api.config.max_event_bytes:
        raise IngestError(
            413, "request_too_large", f"the event is {length} bytes; the limit is {api.config.max_event_bytes}"
        )
    try:
        event = loads(await request.read())
    except ValueError as exc:
        raise IngestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise IngestError(422, "not_object", "the body must be one event, a JSON object")
    try:
        matched = api.router.match(event)
    except InvalidEventError as exc:  # too costly to match against this table (matching.index.MAX_MATCH_WORK)
        raise IngestError(422, "invalid_event", exc.message, [("event", exc.message)]) from None
    previews = preview(matched, event, now=api.clock())
    return web.json_response({"matched": [p.target for p in previews], "deliveries": [p.to_wire() for p in previews]})
