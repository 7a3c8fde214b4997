"""``GET /metrics`` (Prometheus text, no key needed) and ``GET /v1/status`` (per-target delivered, failed,
retries, p50/p99 and circuit; the queue's depths)."""

from __future__ import annotations

import contextlib

from aiohttp import web

from cxone_eventbridge.observe.metrics import CONTENT_TYPE
from cxone_eventbridge.router.http_routes import context
from cxone_eventbridge.router.queue import QueueStats

routes = web.RouteTableDef()


def queue_depths(stats: QueueStats) -> dict[str, int]:
    return {"pending": stats.pending, "leased": stats.leased, "delivered": stats.delivered, "dead": stats.dead}


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    api = context.of(request)
    api.metrics.ensure_targets(api.router.target_names())  # every configured target's series, at zero
    with contextlib.suppress(Exception):  # a scrape still answers with the rest when the queue does not
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
    stats = await api.router.stats()
    api.status.ensure(api.router.target_names())
    return web.json_response(
        {
            "eventsAccepted": api.status.events_accepted,
            "queue": {
                **queue_depths(stats),
                "pendingByTarget": dict(stats.pending_by_target),
                "oldestPendingAt": stats.oldest_pending_at,
            },
            "targets": api.status.snapshot(),
        }
    )
