"""What ``cxeb router serve`` assembles: queue, targets, observers, HTTP API; served until a signal, then drained.

``serve_router(options)`` is the one function that builds and runs a router from the command's options.
Before it serves it
- takes a SQLite queue file's owner lock (``router.queue_owner``): a second router on the same file refuses
  to start, naming the process that holds it, instead of taking the first one's work (a PostgreSQL queue
  is shared by design: its leases keep routers apart);
- checks every target's endpoint against the SSRF guard once, and says loudly which targets it refuses,
  at which address, and which ``--allow-private`` admits them (their dead letters are then not logged one
  by one).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from cxone_eventbridge.cli import render
from cxone_eventbridge.config import url_without_password
from cxone_eventbridge.defaults import DEFAULT_BODY_TIMEOUT_S, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS
from cxone_eventbridge.exceptions import ConfigurationError
from cxone_eventbridge.models import IntegrationTarget

if TYPE_CHECKING:
    from cxone_eventbridge.observe.events import ObservedEvent
    from cxone_eventbridge.observe.tracing import RouterTracing
    from cxone_eventbridge.ssrf import EgressPolicy

QUEUE_DIR = Path(".cxeb/router")


@dataclass(frozen=True)
class ServeOptions:
    """``router serve``'s options, gathered so the composition below reads as one function."""

    host: str
    port: int
    queue_url: str
    migrate: bool
    targets: Path | None
    from_api: bool
    sync_interval_s: float
    tls_cert: Path | None
    tls_key: Path | None
    ingest_key: SecretStr | None
    ca_bundle: Path | None
    allow_private: tuple[str, ...]
    audit_log: Path | None
    drain_deadline_s: float
    max_request_bytes: int
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    workers: int = 1
    worker: int | None = None  # this process's index among --workers
    otel: bool = False
    archive_days: float = 0.0  # router.archive: keep events and attempts, for replays

    @property
    def owner(self) -> str:
        """This router's name in the queue's leases: stable across restarts, distinct per port and worker."""
        suffix = f"/w{self.worker}" if self.worker is not None else ""
        return f"{socket.gethostname()}:{self.port}{suffix}"

    @property
    def audit_path(self) -> Path | None:
        """One hash-chained audit log per process: workers write ``NAME-wN.EXT`` beside ``--audit-log``."""
        if self.audit_log is None or self.worker is None:
            return self.audit_log
        return self.audit_log.with_name(f"{self.audit_log.stem}-w{self.worker}{self.audit_log.suffix}")


def default_queue_path(targets: Path | None) -> Path:
    """A queue file of its own per targets file (``.cxeb/router/<name>-<hash of its path>.db``), or for the API.

    Two routers started in one directory for different targets files never share a queue by accident.
    """
    if targets is None:
        return QUEUE_DIR / "from-api.db"
    digest = hashlib.sha256(str(targets.resolve()).encode()).hexdigest()[:8]
    return QUEUE_DIR / f"{targets.stem}-{digest}.db"


def _server_ssl(options: ServeOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ConfigurationError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--tls-cert/--tls-key cannot be loaded: {exc}") from exc
    return context


def _delivery_ssl(ca_bundle: Path | None) -> ssl.SSLContext | None:
    if ca_bundle is None:
        return None
    from cxone_eventbridge.router.delivery import ssl_context_for

    try:
        return ssl_context_for(str(ca_bundle))  # the system's CAs and these
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--ca-bundle {ca_bundle} cannot be loaded: {exc}") from exc


@dataclass(frozen=True)
class RefusedEndpoint:
    """A target whose endpoint the SSRF guard refuses: at which address, why, and the flag that admits it."""

    target: str
    endpoint: str
    address: str
    reason: str

    @property
    def admitted_by(self) -> str:
        prefix = 32 if ipaddress.ip_address(self.address).version == 4 else 128
        return f"--allow-private {self.address}/{prefix}"


async def refused_endpoints(targets: Sequence[IntegrationTarget], policy: EgressPolicy) -> list[RefusedEndpoint]:
    """The targets whose endpoint resolves to an address ``policy`` refuses (a name that does not resolve
    now is not reported: it may resolve later, and is checked again at every delivery)."""
    from cxone_eventbridge.ssrf import canonical_host, system_resolver

    refused: list[RefusedEndpoint] = []
    for target in targets:
        parts = urlsplit(target.endpoint)
        try:
            host = canonical_host(parts.hostname or "")
            addresses = await system_resolver(host, parts.port or 443)
        except (ValueError, OSError):
            continue
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if (reason := policy.why_refused(address)) is not None:
                refused.append(RefusedEndpoint(target.name, target.endpoint, str(address), reason))
                break
    return refused


def announce_refusals(refused: Sequence[RefusedEndpoint], *, total: int) -> None:
    """One message at start naming every refused target; an error when no target is left to deliver to."""
    if not refused:
        return
    lines = [f"  - {r.target} ({r.endpoint}): {r.address} is {r.reason}; {r.admitted_by} admits it" for r in refused]
    if len(refused) == total:
        render.error(
            f"the SSRF guard refuses every target ({total}); nothing routed will be delivered, every delivery "
            "will be dead-lettered:\n" + "\n".join(lines)
        )
    else:
        render.warn(
            f"the SSRF guard refuses {len(refused)} of {total} target(s); their deliveries will be "
            "dead-lettered:\n" + "\n".join(lines)
        )


def _quiet_for(names: frozenset[str], observer: Callable[[ObservedEvent], None]) -> Callable[[ObservedEvent], None]:
    """``observer``, except for the dead letters of targets already announced as refused at start."""
    from cxone_eventbridge.observe.events import DeliveryDeadLettered

    def observe(event: ObservedEvent) -> None:
        if isinstance(event, DeliveryDeadLettered) and event.target in names:
            return
        observer(event)

    return observe


async def serve_router(options: ServeOptions) -> None:
    """Compose the router (queue, targets, observers, HTTP API), serve until a signal, then drain."""
    from cxone_eventbridge.observe.audit import AuditLog
    from cxone_eventbridge.observe.delivery_log import log_delivery_outcomes
    from cxone_eventbridge.observe.events import ObserverBus
    from cxone_eventbridge.observe.metrics import RouterMetrics
    from cxone_eventbridge.observe.operations_log import OperationsLog
    from cxone_eventbridge.observe.status import StatusTracker
    from cxone_eventbridge.router.composition import RouterConfig, build_router
    from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
    from cxone_eventbridge.router.queue_owner import QueueOwnerLock
    from cxone_eventbridge.ssrf import EgressPolicy

    try:
        egress = EgressPolicy.from_cidrs(options.allow_private)
    except ValueError as exc:
        raise ConfigurationError(f"--allow-private: {exc}") from exc
    config = ServiceConfig(
        host=options.host,
        port=options.port,
        ingest_key=options.ingest_key,
        ssl_context=_server_ssl(options),
        max_request_bytes=options.max_request_bytes,
        max_connections=options.max_connections,
        idle_timeout_s=options.idle_timeout_s,
        body_timeout_s=options.body_timeout_s,
        drain_deadline_s=options.drain_deadline_s,
        reuse_port=options.worker is not None,
    )
    config.check()
    targets: list[IntegrationTarget] = []
    if options.targets is not None:
        from cxone_eventbridge.cli.context import all_targets, load_targets
        from cxone_eventbridge.iac.targets_file import SecretResolution

        # No advisory warnings before the banner: endpoints are checked below against this router's own
        # --allow-private, and a catch-all target is what a router of every event is for.
        targets = all_targets(
            load_targets([options.targets], resolution=SecretResolution.REQUIRED, advice=False, keep_ids=True)
        )
    refused = await refused_endpoints(targets, egress)
    announce_refusals(refused, total=len(targets))
    bus = ObserverBus()
    metrics, status = RouterMetrics(), StatusTracker()
    bus.subscribe(metrics.observe)
    bus.subscribe(status.observe)
    bus.subscribe(OperationsLog(status).observe)  # after status: an open circuit's line quotes its reason
    # Retries at -v, dead letters always, each with its ids; not those of targets refused above.
    bus.subscribe(_quiet_for(frozenset(r.target for r in refused), log_delivery_outcomes))
    router_config = RouterConfig(
        queue_url=options.queue_url,
        owner=options.owner,
        migrate=options.migrate,
        egress=egress,
        ssl_context=_delivery_ssl(options.ca_bundle),
        archive_days=options.archive_days,
    )
    async with contextlib.AsyncExitStack() as stack:
        if router_config.backend == "sqlite":
            stack.enter_context(QueueOwnerLock(Path(options.queue_url[len("sqlite:///") :])))
        audit = AuditLog(options.audit_path) if options.audit_path is not None else None
        if audit is not None:
            stack.callback(audit.close)
            bus.subscribe(audit.observe)
        tracing = _tracing() if options.otel else None
        if tracing is not None:
            bus.subscribe(tracing.observe)
        router = build_router(
            router_config,
            targets=targets,
            bus=bus,
            header_hook=tracing.webhook_headers if tracing is not None else None,
        )
        sync_task: asyncio.Task[None] | None = None
        if options.from_api:
            from cxone_eventbridge.api import CXoneClient
            from cxone_eventbridge.cli.context import require_api_settings
            from cxone_eventbridge.router.targets_sync import TargetsSync

            client = await stack.enter_async_context(CXoneClient.from_settings(require_api_settings()))
            sync = TargetsSync(client.routes, router, interval_s=options.sync_interval_s)
            first = await sync.sync_once()
            render.info(f"routing table loaded from the API: {len(first.added)} target(s)")
        await router.start()
        # The table is complete: work left for targets it no longer has (removed while we were down) goes now.
        await router.retire_unconfigured()
        if options.from_api:
            sync_task = asyncio.create_task(sync.run(), name="cxeb-routes-sync")
        service = RouterAPI(router, config, bus=bus, metrics=metrics, status=status, audit=audit)
        if tracing is not None:
            tracing.instrument(service.app)
            stack.callback(tracing.close)

        async def drain(deadline_s: float) -> None:
            if sync_task is not None:
                sync_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync_task
            await router.stop(deadline_s)

        def started(url: str) -> None:
            render.info(
                f"router listening on {url} ({len(router.target_names())} target(s), "
                f"queue {url_without_password(options.queue_url)})"
            )

        await service.serve_until_signalled(on_stop=drain, on_started=started)
        render.info("router stopped")


def _tracing() -> RouterTracing:
    """The router's tracing on the global tracer provider (``opentelemetry-instrument`` configures it)."""
    try:
        from cxone_eventbridge.observe.tracing import RouterTracing
    except ImportError as exc:
        raise ConfigurationError("--otel needs OpenTelemetry: pip install 'cxone-eventbridge[otel]'") from exc
    return RouterTracing()


def serve_workers(options: ServeOptions) -> int:
    """Run ``options.workers`` router processes on one port (the kernel spreads connections over them,
    SO_REUSEPORT); SIGTERM or SIGINT here drains them all. The exit code is the worst of theirs."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_worker, args=(replace(options, worker=index),), name=f"cxeb-router-w{index}")
        for index in range(options.workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    return max((process.exitcode or 0) if (process.exitcode or 0) >= 0 else 1 for process in processes)


def _serve_worker(options: ServeOptions) -> None:
    from cxone_eventbridge.cli.runner import run

    os.setsid()  # a terminal's Ctrl-C goes to the parent only, which drains every worker once
    run(serve_router(options), fast_loop=True)
