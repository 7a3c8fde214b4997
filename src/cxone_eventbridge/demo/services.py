"""The demo's servers, started on ephemeral 127.0.0.1 ports and stopped whatever happens.

- the sandbox control plane (uvicorn in a background thread, in-memory database, so every run starts empty);
- two HTTPS receivers in this event loop: a healthy one and a flaky one (a fraction of 503s with Retry-After);
- the router: an ``EventRouter`` on a SQLite queue in the output directory, behind its real HTTP API
  (``router.http_api.RouterAPI``), with metrics, the status view and the audit log on its bus.

``DemoServices.start`` registers every cleanup on an ``AsyncExitStack`` as soon as the thing exists, so a
failure half-way through (or Ctrl-C) stops exactly what was started, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from cxone_eventbridge.config import DEFAULT_SCOPES, GrantType, Settings
from cxone_eventbridge.demo.options import (
    AUDIT_LOG,
    CERTS_DIR,
    FLAKY_RECORD,
    HEALTHY_RECORD,
    QUEUE_DB,
    DemoOptions,
)
from cxone_eventbridge.observe.audit import AuditLog
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.observe.metrics import RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.circuit import CircuitPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
from cxone_eventbridge.sandbox.app import create_app
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, RunningReceiver, start_receiver
from cxone_eventbridge.sandbox.server import BackgroundServer
from cxone_eventbridge.ssrf import EgressPolicy

LOOPBACK = "127.0.0.1"
# The demo makes a few dozen API calls; the sandbox's default 100/minute would pace them for no reason.
DEMO_RATE_LIMIT_PER_MINUTE = 60_000.0
ROUTER_DRAIN_DEADLINE_S = 5.0
DEMO_MAX_IN_FLIGHT = 96
DEMO_PER_TARGET_IN_FLIGHT = 24


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    """Where each demo server listens."""

    sandbox: str
    healthy_receiver: str
    flaky_receiver: str
    router: str


def demo_settings(base_url: str) -> Settings:
    """Client settings for the demo sandbox, every field given so no ``CXONE_*`` variable leaks in."""
    return Settings(
        base_url=base_url,
        token_url=f"{base_url}/oauth/token",
        client_id=DEMO_CLIENT_ID,
        client_secret=SecretStr(DEMO_CLIENT_SECRET),
        grant_type=GrantType.CLIENT_CREDENTIALS,
        access_key_id=None,
        access_key_secret=None,
        scopes=DEFAULT_SCOPES,
        rate_limit_per_minute=DEMO_RATE_LIMIT_PER_MINUTE,
        ca_bundle=None,
        discovery_url=None,
        tenant_id=None,
        timeout_s=30.0,
        max_attempts=4,
        max_retry_wait_s=5.0,
    )


def remove_previous_run(output_dir: Path) -> None:
    """Delete what an earlier run left (queue, audit log, receiver records), so each run starts alike.

    Only the demo's own file names are removed; the certificates are kept and reused.
    """
    names = [QUEUE_DB, f"{QUEUE_DB}-wal", f"{QUEUE_DB}-shm", f"{QUEUE_DB}-journal", HEALTHY_RECORD, FLAKY_RECORD]
    names += [AUDIT_LOG, f"{AUDIT_LOG}.lock"]
    for name in names:
        (output_dir / name).unlink(missing_ok=True)
    for rotated in output_dir.glob(f"{AUDIT_LOG}.*"):
        if rotated.name.removeprefix(f"{AUDIT_LOG}.").isdigit():
            rotated.unlink()


class DemoServices:
    """Every server of a demo run; ``async with DemoServices.start(options):`` or ``await stop()``."""

    def __init__(self, stack: contextlib.AsyncExitStack, options: DemoOptions) -> None:
        self._stack = stack
        self.options = options
        self.output_dir = options.output_dir
        self.bus = ObserverBus()
        self.status = StatusTracker(window=100_000)
        self.metrics = RouterMetrics()
        self.audit_path = options.output_dir / AUDIT_LOG
        self.audit: AuditLog | None = None
        self.sandbox: BackgroundServer | None = None
        self.healthy: RunningReceiver | None = None
        self.flaky: RunningReceiver | None = None
        self.router: EventRouter | None = None
        self.service: RouterAPI | None = None
        self.ca_path: Path | None = None

    @classmethod
    async def start(cls, options: DemoOptions) -> DemoServices:
        """Start everything; on any failure, stop what was started and re-raise."""
        stack = contextlib.AsyncExitStack()
        services = cls(stack, options)
        try:
            await services._start_all()
        except BaseException:
            await stack.aclose()
            raise
        return services

    async def _start_all(self) -> None:
        options, out = self.options, self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        remove_previous_run(out)
        certs = await asyncio.to_thread(ensure_certificates, out / CERTS_DIR)
        self.ca_path = certs.ca

        self.audit = AuditLog(self.audit_path, status=self.status)  # counts kept once, by the status view
        self._stack.callback(self.audit.close)
        self.bus.subscribe(self.audit.observe)
        self.bus.subscribe(self.status.observe)
        self.bus.subscribe(self.metrics.observe)
        for observer in options.observers:
            self.bus.subscribe(observer)

        sandbox_app = create_app(
            SandboxConfig(
                host=LOOPBACK,
                port=0,
                rate_limit_per_minute=DEMO_RATE_LIMIT_PER_MINUTE,
                allow_private=(f"{LOOPBACK}/32",),
                ca_bundle=certs.ca,
            )
        )
        self._stack.callback(sandbox_app.state.sandbox.close)
        sandbox = BackgroundServer(sandbox_app, host=LOOPBACK, port=0)
        self._stack.callback(sandbox.stop)  # registered first: stop() is safe on a server that never started
        self.sandbox = await asyncio.to_thread(sandbox.start)

        self.healthy = await start_receiver(
            ReceiverConfig(certs_dir=out / CERTS_DIR, host=LOOPBACK, port=0, record_path=out / HEALTHY_RECORD)
        )
        self._stack.push_async_callback(self.healthy.stop)
        self.flaky = await start_receiver(
            ReceiverConfig(
                certs_dir=out / CERTS_DIR,
                host=LOOPBACK,
                port=0,
                record_path=out / FLAKY_RECORD,
                fail_rate=options.flaky_fail_rate,
                retry_after=options.flaky_retry_after_s,
                seed=options.seed,
            )
        )
        self._stack.push_async_callback(self.flaky.stop)

        dispatcher = DispatcherOptions(
            # Receivers and router share this process: fewer requests in flight keep latency honest
            # (Little's law) at the same throughput.
            max_in_flight=DEMO_MAX_IN_FLIGHT,
            per_target_in_flight=DEMO_PER_TARGET_IN_FLIGHT,
            retry_base_s=options.retry_base_s,
            retry_cap_s=options.retry_cap_s,
            max_retry_after_s=max(options.flaky_retry_after_s, options.retry_cap_s),
            poll_interval_s=0.05,
            # A flaky endpoint that fails one request in five must not trip the breaker for seconds at a time.
            circuit=CircuitPolicy(failure_threshold=10, open_s=0.5, max_open_s=2.0),
        )
        router = build_router(
            RouterConfig(
                queue_url=sqlite_url(out / QUEUE_DB),
                owner="demo",
                dispatcher=dispatcher,
                egress=EgressPolicy.from_cidrs([f"{LOOPBACK}/32"]),
                ssl_context=ssl.create_default_context(cafile=str(certs.ca)),
            ),
            bus=self.bus,
        )
        self._stack.push_async_callback(router.stop, ROUTER_DRAIN_DEADLINE_S)
        await router.start()
        self.router = router

        service = RouterAPI(
            router,
            ServiceConfig(host=LOOPBACK, port=0, drain_deadline_s=ROUTER_DRAIN_DEADLINE_S),
            bus=self.bus,
            metrics=self.metrics,
            status=self.status,
            audit=self.audit,
        )
        self._stack.push_async_callback(service.stop)
        await service.start()
        self.service = service

    @property
    def urls(self) -> ServiceUrls:
        assert self.sandbox is not None
        assert self.healthy is not None
        assert self.flaky is not None
        assert self.service is not None
        return ServiceUrls(
            sandbox=self.sandbox.base_url,
            healthy_receiver=self.healthy.url,
            flaky_receiver=self.flaky.url,
            router=self.service.url,
        )

    def settings(self) -> Settings:
        """Client settings for this run's sandbox."""
        assert self.sandbox is not None
        return demo_settings(self.sandbox.base_url)

    async def stop(self) -> None:
        """Stop every server (the router drains first), close the queue and the audit log."""
        await self._stack.aclose()

    async def __aenter__(self) -> DemoServices:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
