"""The router's HTTP API (``cxeb router serve``): ingest, health, metrics, status and dead letters.

Built on ``aiohttp.web``: on this 2-core machine a minimal JSON ingest handler served 4,400-5,800 req/s
with aiohttp.web against 2,200-2,900 req/s with FastAPI on uvicorn (32 in flight; docs/router.md), it
shares one event loop with the aiohttp delivery client, and it lets the service cap a body while reading.

Routes (``/v1/*`` need ``Authorization: Bearer <ingest key>`` when a key is configured; health and
metrics never do, as Prometheus and orchestrators expect)::

    POST /v1/events                     one object, an array or NDJSON; ?priority=0-9 (default 5) -> 202 {ids}
    GET  /healthz                       the process is up
    GET  /readyz                        the queue answers and has room, the routing table is loaded, the audit
                                        log writes
    GET  /metrics                       Prometheus text
    GET  /v1/status                     per-target delivered/failed/retries/p50/p99/circuit, queue depths
    GET  /ui                            the live dashboard (router.dashboard; its data under /v1/ui/)
    GET  /v1/deliveries/live            NDJSON stream of delivery attempts (router.live; ?target=&failed=)
    GET  /v1/dead-letters               ?target=&limit=
    POST /v1/dead-letters/replay        {"target": ..., "deliveryIds": [...]} (both optional)
    POST /v1/dead-letters/purge         {"target": ..., "deliveryIds": [...]} (both optional)
    POST /v1/targets/{name}/enable      re-enable a target that a 410 disabled
    POST /v1/match                      one event, a dry run: {matched, deliveries: [{target, contentType, body}]}

Every error is a JSON body ``{"error": code, "message": ..., "errors": [{"field", "message"}]}``, the same
shape as the control-plane API's. A request is accepted or rejected whole; 202 comes only after the
queue's durable commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
from cxone_eventbridge.exceptions import (
    ConfigurationError,
    IngestError,
    InputError,
    InvalidEventError,
    QueueClosedError,
    QueueError,
    QueueFullError,
)
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import IngestRejected, ObserverBus
from cxone_eventbridge.observe.metrics import CONTENT_TYPE, AuditHealthSource, RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.preview import preview
from cxone_eventbridge.router.connection_cap import CappedTCPSite, ConnectionCap
from cxone_eventbridge.router.dashboard import Dashboard
from cxone_eventbridge.router.ingest_body import parse_events_stepwise
from cxone_eventbridge.router.live import DeliveryFeed
from cxone_eventbridge.router.queue import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    QueueStats,
)
from cxone_eventbridge.wire import DEFAULT_MAX_EVENTS_PER_REQUEST, MAX_EVENT_BYTES, loads

log = logging.getLogger(__name__)
_ops_log = logging.getLogger("cxone_eventbridge.operations")  # observe.operations_log's lines


def _operations_log(action: str, count: int, ids: list[str] | None, target: str | None) -> None:
    """One structured line per dead-letter replay or purge through the API."""
    scope = f"{len(ids)} named" if ids is not None else f"all of {target}" if target else "all"
    _ops_log.info(
        "dead letters: %s %d (%s)",
        "replayed" if action == "replay" else "purged",
        count,
        scope,
        extra={"operation": action, "target": target, "count": count, "named": None if ids is None else len(ids)},
    )


DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


class RouterOperations(Protocol):
    """What the HTTP API needs from the router (``router.event_router.EventRouter`` provides it)."""

    async def ingest(self, events: Sequence[Any], priority: int = DEFAULT_PRIORITY) -> list[str]: ...

    async def stats(self) -> QueueStats: ...

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int: ...

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int: ...

    async def enable_target(self, name: str) -> bool: ...

    def target_names(self) -> list[str]: ...

    def match(self, event: Any) -> list[IntegrationTarget]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def storage_full(self) -> bool: ...


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
        self._draining = False
        self._runner: web.AppRunner | None = None
        self._site: CappedTCPSite | None = None
        self.connections = ConnectionCap(config.max_connections)
        self.port: int | None = None
        self.app = self._build_app()

    # -- app ----------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Over client_max_size, reading the body raises HTTPRequestEntityTooLarge, answered as JSON below.
        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[self._errors, self._auth])
        app.router.add_post("/v1/events", self._ingest)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/dead-letters", self._dead_letters)
        app.router.add_post("/v1/dead-letters/replay", self._replay)
        app.router.add_post("/v1/dead-letters/purge", self._purge)
        app.router.add_post("/v1/targets/{name}/enable", self._enable)
        Dashboard(
            self.router, status=self.status, bus=self.bus, dead_letter_to_wire=dead_letter_to_wire, clock=self._clock
        ).mount(app)
        DeliveryFeed(self.bus).mount(app)
        app.router.add_post("/v1/match", self._match)
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

    # -- ingest -------------------------------------------------------------------------------------

    async def _ingest(self, request: web.Request) -> web.Response:
        if self._draining:
            raise IngestError(503, "shutting_down", "the router is shutting down; retry against another instance")
        priority = parse_priority(request.query.get("priority"))
        length = request.content_length
        if length is not None and length > self.config.max_request_bytes:
            raise IngestError(
                413, "request_too_large", f"the request is {length} bytes; the limit is {self.config.max_request_bytes}"
            )
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                body = await request.read()
        except TimeoutError:
            raise IngestError(
                408, "request_timeout", f"the body did not arrive within {self.config.body_timeout_s:g} seconds"
            ) from None
        steps = parse_events_stepwise(
            body,
            content_type=request.content_type,
            max_event_bytes=self.config.max_event_bytes,
            max_events=self.config.max_events_per_request,
        )
        while True:
            try:
                next(steps)
            except StopIteration as done:
                events: list[dict[str, Any]] = done.value
                break
            await asyncio.sleep(0)  # a step is ~64 KiB of JSON text: other requests run in between
        try:
            ids = await self.router.ingest(events, priority=priority)
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

    # -- health, metrics, status --------------------------------------------------------------------

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems: list[str] = []
        if self._draining:
            problems.append("shutting down")
        if not self.router.ready:
            problems.append("the routing table is not loaded")
        if self.router.storage_full:
            problems.append("the queue's storage is full: events cannot be accepted until space is freed")
        if self.audit is not None and (audit := self.audit.health()).failing:
            problems.append(
                f"the audit log cannot be written ({audit.last_error}): {audit.records_lost} record(s) lost so far"
            )
        try:
            await self.router.stats()
        except Exception as exc:  # noqa: BLE001 -- any failure to reach the queue means "not ready"
            problems.append(f"the queue does not answer: {type(exc).__name__}")
        if problems:
            return web.json_response({"status": "not_ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.metrics.ensure_targets(self.router.target_names())  # every configured target's series, at zero
        with contextlib.suppress(Exception):  # a scrape still answers with the rest when the queue does not
            stats = await self.router.stats()
            self.metrics.set_queue_stats(
                _depths(stats),
                pending_by_target=stats.pending_by_target,
                oldest_pending_at=stats.oldest_pending_at,
                now=self._clock(),
            )
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _status(self, _request: web.Request) -> web.Response:
        stats = await self.router.stats()
        self.status.ensure(self.router.target_names())
        return web.json_response(
            {
                "eventsAccepted": self.status.events_accepted,
                "queue": {
                    **_depths(stats),
                    "pendingByTarget": dict(stats.pending_by_target),
                    "oldestPendingAt": stats.oldest_pending_at,
                },
                "targets": self.status.snapshot(),
            }
        )

    # -- dead letters and targets -------------------------------------------------------------------

    async def _dead_letters(self, request: web.Request) -> web.Response:
        target = request.query.get("target") or None
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10_000:
            raise IngestError(400, "invalid_limit", "limit must be an integer from 1 to 10000", [("limit", "")])
        letters = await self.router.dead_letters(target=target, limit=limit)
        return web.json_response({"items": [dead_letter_to_wire(d) for d in letters]})

    async def _selection(self, request: web.Request) -> tuple[list[str] | None, str | None]:
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
        return ids, target

    async def _replay(self, request: web.Request) -> web.Response:
        ids, target = await self._selection(request)
        count = await self.router.replay(delivery_ids=ids, target=target)
        _operations_log("replay", count, ids, target)
        return web.json_response({"replayed": count})

    async def _purge(self, request: web.Request) -> web.Response:
        ids, target = await self._selection(request)
        count = await self.router.purge(delivery_ids=ids, target=target)
        _operations_log("purge", count, ids, target)
        return web.json_response({"purged": count})

    async def _enable(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not await self.router.enable_target(name):
            raise IngestError(404, "not_found", f"no target named {name!r}")
        _ops_log.info("target %s enabled", name, extra={"operation": "target_enabled", "target": name})
        return web.json_response({"target": name, "enabled": True})

    async def _match(self, request: web.Request) -> web.Response:
        """A dry run against the live table: the targets an event reaches and what each would receive."""
        length = request.content_length
        if length is not None and length > self.config.max_event_bytes:
            raise IngestError(
                413, "request_too_large", f"the event is {length} bytes; the limit is {self.config.max_event_bytes}"
            )
        try:
            event = loads(await request.read())
        except ValueError as exc:
            raise IngestError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(event, dict):
            raise IngestError(422, "not_object", "the body must be one event, a JSON object")
        try:
            matched = self.router.match(event)
        except InvalidEventError as exc:  # too costly to match against this table (matching.index.MAX_MATCH_WORK)
            raise IngestError(422, "invalid_event", exc.message, [("event", exc.message)]) from None
        previews = preview(matched, event, now=self._clock())
        return web.json_response(
            {"matched": [p.target for p in previews], "deliveries": [p.to_wire() for p in previews]}
        )

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
        self._draining = True
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


def _depths(stats: QueueStats) -> dict[str, int]:
    return {"pending": stats.pending, "leased": stats.leased, "delivered": stats.delivered, "dead": stats.dead}


def dead_letter_to_wire(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON (camelCase, times as Unix seconds)."""
    return {
        "deliveryId": letter.delivery_id,
        "eventId": letter.event_id,
        "target": letter.target,
        "priority": letter.priority,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "lastStatus": letter.last_status,
        "lastError": letter.last_error,
        "acceptedAt": letter.accepted_at,
        "deadAt": letter.dead_at,
    }
