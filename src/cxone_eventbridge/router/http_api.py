"""The router's HTTP API (``cxeb router serve``): the app, its middleware and its lifecycle.

Built on ``aiohttp.web``: on this 2-core machine a minimal JSON ingest handler served 4,400-5,800 req/s
with aiohttp.web against 2,200-2,900 req/s with FastAPI on uvicorn (32 in flight; docs/router.md), it
shares one event loop with the delivery client, and it lets the service cap a body while reading.

Routes (``/v1/*`` need ``Authorization: Bearer <ingest key>`` when a key is configured; health and
metrics never do, as Prometheus and orchestrators expect), one module per resource in ``router/http_routes/``::

    POST /v1/events                     ingest: one object, an array or NDJSON; ?priority=0-9 -> 202 {ids}
    GET  /healthz, /readyz              health: the process is up; the queue, table and audit log work
    GET  /metrics, /v1/status           status: Prometheus text; per-target figures and queue depths
    GET  /v1/dead-letters               dead_letters: ?target=&limit=
    POST /v1/dead-letters/replay|purge  dead_letters: {"target": ..., "deliveryIds": [...]} (both optional)
    POST /v1/targets/{name}/enable      targets: re-enable a target that a 410 disabled
    POST /v1/match                      match: one event, a dry run
    GET  /ui, /v1/ui/overview           the live dashboard (router.dashboard)
    GET  /v1/deliveries/live            NDJSON stream of delivery attempts (router.live; ?target=&failed=)

Every error is a JSON body ``{"error": code, "message": ..., "errors": [{"field", "message"}]}``, the same
shape as the control-plane API's.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

# Connections beyond DEFAULT_MAX_CONNECTIONS are answered 503 and closed (router.connection_cap): well under
# the usual descriptor limits, so the queue and the delivery client always have descriptors left. A
# connection that has not completed a request's headers DEFAULT_IDLE_TIMEOUT_S after opening, or after its
# last response, is closed; a body must arrive within DEFAULT_BODY_TIMEOUT_S, or the answer is 408.
from cxone_eventbridge.defaults import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_ROUTER_PORT,
)
from cxone_eventbridge.exceptions import ConfigurationError, IngestError
from cxone_eventbridge.observe.events import IngestRejected, ObserverBus
from cxone_eventbridge.observe.metrics import AuditHealthSource, RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.archive_api import ArchiveRoutes, ArchiveSource
from cxone_eventbridge.router.connection_cap import CappedTCPSite, ConnectionCap
from cxone_eventbridge.router.dashboard import Dashboard
from cxone_eventbridge.router.http_routes import dead_letters, health, ingest, match, status, targets
from cxone_eventbridge.router.http_routes.context import CONTEXT, ApiContext, RouterOperations
from cxone_eventbridge.router.live import DeliveryFeed
from cxone_eventbridge.wire import DEFAULT_MAX_EVENTS_PER_REQUEST, MAX_EVENT_BYTES

log = logging.getLogger(__name__)

# The resources the API serves: each module's ``routes`` table is mounted as it is. A new resource is a
# new module in router/http_routes/ and one entry here.
ROUTE_MODULES = (
    ingest,
    health,
    status,
    dead_letters,
    targets,
    match,
)

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


def bare_host(host: str) -> str:
    """``host`` as a socket binds it: an IPv6 literal written in URL brackets (``[::1]``) without them."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    """How the HTTP API listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_ROUTER_PORT
    ingest_key: SecretStr | None = None
    ssl_context: ssl.SSLContext | None = None
    max_event_bytes: int = MAX_EVENT_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_events_per_request: int = DEFAULT_MAX_EVENTS_PER_REQUEST
    drain_deadline_s: float = 30.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    reuse_port: bool = False  # share the port with this machine's other router processes (--workers)
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S

    def __post_init__(self) -> None:
        # "[::1]" is how a URL writes the address; the socket wants "::1".
        object.__setattr__(self, "host", bare_host(self.host))

    def check(self) -> None:
        """Refuse to listen beyond loopback without an ingest key; sane limits."""
        if self.ingest_key is None and not is_loopback_host(self.host):
            raise ConfigurationError(
                f"refusing to listen on {self.host} without an ingest key: set --ingest-key or CXEB_INGEST_KEY "
                "(or listen on 127.0.0.1)"
            )
        if self.ingest_key is not None and len(self.ingest_key.get_secret_value()) < 16:
            raise ConfigurationError("the ingest key must be at least 16 characters")
        if self.max_request_bytes < self.max_event_bytes:
            raise ConfigurationError("max_request_bytes must be at least max_event_bytes")
        if self.max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        if self.idle_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ConfigurationError("the idle and body timeouts must be positive")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouterAPI:
    """The HTTP API over ``RouterOperations``; ``start``/``stop`` or ``serve_until_signalled``."""

    def __init__(
        self,
        router: RouterOperations,
        config: ServiceConfig,
        *,
        bus: ObserverBus,
        metrics: RouterMetrics,
        status: StatusTracker,
        audit: AuditHealthSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``audit``, when given, is the audit log whose failing writes ``/readyz`` and the metrics report."""
        config.check()
        self.router = router
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.status = status
        self.audit = audit
        if audit is not None:
            metrics.watch_audit(audit)
        self._clock = clock
        self._context = ApiContext(router, config, bus, metrics, status, audit=audit, clock=clock)
        self._runner: web.AppRunner | None = None
        self._site: CappedTCPSite | None = None
        self.connections = ConnectionCap(config.max_connections)
        self.port: int | None = None
        self.app = self._build_app()

    # -- app ----------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Over client_max_size, reading the body raises HTTPRequestEntityTooLarge, answered as JSON below.
        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[self._errors, self._auth])
        app[CONTEXT] = self._context
        for module in ROUTE_MODULES:
            app.add_routes(module.routes)
        Dashboard(
            self.router,
            status=self.status,
            bus=self.bus,
            dead_letter_to_wire=dead_letters.dead_letter_to_wire,
            clock=self._clock,
        ).mount(app)
        DeliveryFeed(self.bus, resolve=self.router.resolve_target).mount(app)
        if isinstance(self.router, ArchiveSource):  # event history and replays (router.archive_api)
            ArchiveRoutes(self.router, bus=self.bus, registry=self.metrics.registry, clock=self._clock).mount(app)
        return app

    def _reject(self, error: IngestError) -> web.Response:
        if not error.counted:
            self.bus.publish(IngestRejected(reason=error.code, at=self._clock()))
        headers = {"WWW-Authenticate": 'Bearer realm="cxeb-router"'} if error.status == 401 else None
        if error.status == 503:
            headers = {"Retry-After": "5"}
        return web.json_response(error.body(), status=error.status, headers=headers)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except IngestError as exc:
            return self._reject(exc)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(
                IngestError(413, "request_too_large", f"the request is over {self.config.max_request_bytes} bytes")
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            return web.json_response({"error": code, "message": exc.reason, "errors": []}, status=exc.status)
        except Exception:  # the HTTP boundary: a bug answers 500 JSON and the service keeps serving
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return web.json_response(
                {"error": "internal_error", "message": "the router failed to handle the request", "errors": []},
                status=500,
            )

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = self.config.ingest_key
        if key is not None and request.path.startswith("/v1/"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            expected = key.get_secret_value().encode()
            # Header bytes that are not UTF-8 arrive as surrogate escapes: keep them as the bytes they were.
            presented = token.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented, expected):
                raise IngestError(401, "unauthorized", "a valid bearer ingest key is required")
        return await handler(request)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; ``port`` is the bound port (useful with port 0)."""
        # aiohttp's keep-alive timeout runs from the moment a connection opens: it is the header timeout too.
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, keepalive_timeout=self.config.idle_timeout_s
        )
        await self._runner.setup()
        self._site = CappedTCPSite(
            self._runner,
            self.config.host,
            self.config.port,
            cap=self.connections,
            ssl_context=self.config.ssl_context,
            ssl_handshake_timeout=self.config.idle_timeout_s,
            backlog=1024,
            reuse_port=self.config.reuse_port,
        )
        try:
            await self._site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigurationError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}"
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        log.info("router listening on %s", self.url)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.ssl_context is not None else "http"
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"{scheme}://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (their events are committed or refused whole)."""
        self._context.draining = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_until_signalled(
        self,
        *,
        on_stop: Callable[[float], Awaitable[None]],
        on_started: Callable[[str], None] | None = None,
    ) -> None:
        """Serve until SIGTERM or SIGINT, then stop accepting and call ``on_stop(deadline_s)`` to drain."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await self.start()
            if on_started is not None:
                on_started(self.url)
            await stop.wait()
            log.info("signal received: draining (deadline %.1fs)", self.config.drain_deadline_s)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.stop()
            await on_stop(self.config.drain_deadline_s)
