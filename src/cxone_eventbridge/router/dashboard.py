"""The router's own dashboard: ``GET /ui`` and the one data route it polls.

``/ui`` and its assets are static files shipped in the package (``router/ui/``): no CDN, no build step,
so the page works on a machine without internet. They hold no data, so they are served without a key;
everything the page shows comes from ``GET /v1/ui/overview`` and every action goes to the existing
``/v1/dead-letters/*`` routes, all behind the same bearer key as the rest of ``/v1/*``. The page asks for
the key once and keeps it in ``sessionStorage`` (gone when the tab closes), and sends it only in the
``Authorization`` header, never in a URL.

``GET /v1/ui/overview`` answers, in one request per poll: the last five minutes second by second
(``observe.timeline``), the queue's depths, every target's status (``observe.status``) and the newest
dead letters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Protocol

from aiohttp import web

from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.observe.timeline import Timeline
from cxone_eventbridge.router.queue import DeadLetter, QueueStats
from cxone_eventbridge.wire import iso_time

DEAD_LETTERS_SHOWN = 50
_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# The page runs only its own script and talks only to its own origin.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class DashboardSource(Protocol):
    """What the dashboard reads from the router (``RouterOperations`` provides it)."""

    async def stats(self) -> QueueStats: ...

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    def target_names(self) -> list[str]: ...


DeadLetterWire = Callable[[DeadLetter], dict[str, object]]


def _asset(name: str) -> bytes:
    return resources.files("cxone_eventbridge.router").joinpath("ui", name).read_bytes()


class Dashboard:
    """Serves the page and its data; ``mount`` adds the routes to the router's HTTP app."""

    def __init__(
        self,
        router: DashboardSource,
        *,
        status: StatusTracker,
        bus: ObserverBus,
        dead_letter_to_wire: DeadLetterWire,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._router = router
        self._status = status
        self._to_wire = dead_letter_to_wire
        self._clock = clock
        self.timeline = Timeline(clock=clock)
        bus.subscribe(self.timeline.observe)
        self._assets = {name: _asset(name) for name in (*_ASSETS, "index.html")}

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/ui", self._page)
        app.router.add_get("/ui/", self._page)
        app.router.add_get("/ui/assets/{name}", self._asset)
        app.router.add_get("/v1/ui/overview", self._overview)

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._assets["index.html"], content_type="text/html", charset="utf-8", headers=_SECURITY_HEADERS
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _ASSETS:
            raise web.HTTPNotFound
        return web.Response(body=self._assets[name], headers={**_SECURITY_HEADERS, "Content-Type": _ASSETS[name]})

    async def _overview(self, _request: web.Request) -> web.Response:
        stats = await self._router.stats()
        depths = {"pending": stats.pending, "leased": stats.leased, "delivered": stats.delivered, "dead": stats.dead}
        self.timeline.record_queue(depths)
        self._status.ensure(self._router.target_names())
        targets = self._status.snapshot()
        for row in targets:
            row["pending"] = int(stats.pending_by_target.get(row["target"], 0))
        letters: Sequence[DeadLetter] = await self._router.dead_letters(limit=DEAD_LETTERS_SHOWN)
        timeline = self.timeline.columns()
        timeline["t"] = [iso_time(second) for second in timeline["t"]]
        return web.json_response(
            {
                "now": iso_time(self._clock()),
                "eventsAccepted": self._status.events_accepted,
                "queue": {**depths, "oldestPendingAt": iso_time(stats.oldest_pending_at)},
                "timeline": timeline,
                "targets": targets,
                "deadLetters": [self._to_wire(letter) for letter in letters],
            }
        )
