"""``GET /metrics`` (Prometheus text, no key needed) and ``GET /v1/status`` (per-target delivered, failed,
retries, p50/p99, circuit and hold; the queue's depths). ``?target=`` (name or id) keeps one target's row.

A target's ``hold`` is why the queue holds its deliveries (``paused`` by an operator, ``gone`` after a
410), or null while it delivers; /metrics has it as ``cxeb_target_paused`` and ``cxeb_target_disabled``."""

from __future__ import annotations

import contextlib

from aiohttp import web

from cxone_eventbridge.observe.metrics import CONTENT_TYPE
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.router.queue import QueueStats
from cxone_eventbridge.wire import iso_time

routes = web.RouteTableDef()


def queue_depths(stats: QueueStats) -> dict[str, int]:
    return {"pending": stats.pending, "leased": stats.leased, "delivered": stats.delivered, "dead": stats.dead}


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    api = context.of(request)
    api.metrics.ensure_targets(api.router.target_names())  # every configured target's series, at zero
    with contextlib.suppress(Exception):  # a scrape still answers with the rest when the queue does not
        api.metrics.set_target_holds(await api.router.target_holds())
        stats = await api.router.stats()
        api.metrics.set_queue_stats(
            queue_depths(stats),
            pending_by_target=stats.pending_by_target,
            oldest_pending_at=stats.oldest_pending_at,
            now=api.clock(),
        )
    return web.Response(body=api.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    api = context.of(request)
    ref = request.query.get("target")
    only = context.resolve_target(request, ref) if ref else None
    stats = await api.router.stats()
    holds = await api.router.target_holds()
    api.status.ensure(api.router.target_names())
    rows = [row for row in api.status.snapshot() if only is None or row["target"] == only]
    for row in rows:
        row["hold"] = holds.get(row["target"])
    return web.json_response(
        {
            "eventsAccepted": api.status.events_accepted,
            "queue": {
                **queue_depths(stats),
                "pendingByTarget": dict(stats.pending_by_target),
                "oldestPendingAt": iso_time(stats.oldest_pending_at),
            },
            "targets": rows,
        }
    )
