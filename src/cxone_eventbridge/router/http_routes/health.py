"""``GET /healthz`` (the process is up) and ``GET /readyz`` (the queue answers and has room, the routing table
is loaded, the audit log writes); neither needs the ingest key, as orchestrators expect."""

from __future__ import annotations

from aiohttp import web

from cxone_eventbridge.router.http_routes import context

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    api = context.of(request)
    problems: list[str] = []
    if api.draining:
        problems.append("shutting down")
    if not api.router.ready:
        problems.append("the routing table is not loaded")
    if api.router.storage_full:
        problems.append("the queue's storage is full: events cannot be accepted until space is freed")
    if api.audit is not None and (audit := api.audit.health()).failing:
        problems.append(
            f"the audit log cannot be written ({audit.last_error}): {audit.records_lost} record(s) lost so far"
        )
    try:
        await api.router.stats()
    except Exception as exc:  # noqa: BLE001 -- any failure to reach the queue means "not ready"
        problems.append(f"the queue does not answer: {type(exc).__name__}")
    if problems:
        return web.json_response({"status": "not_ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})
