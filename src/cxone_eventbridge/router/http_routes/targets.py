"""``POST /v1/targets/{name}/enable``: deliver again to a target that a 410 answer disabled."""

from __future__ import annotations

import logging

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError
from cxone_eventbridge.router.http_routes import context

routes = web.RouteTableDef()
_ops_log = logging.getLogger("cxone_eventbridge.operations")  # observe.operations_log's lines


@routes.post("/v1/targets/{name}/enable")
async def enable(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not await context.of(request).router.enable_target(name):
        raise IngestError(404, "not_found", f"no target named {name!r}")
    _ops_log.info("target %s enabled", name, extra={"operation": "target_enabled", "target": name})
    return web.json_response({"target": name, "enabled": True})
