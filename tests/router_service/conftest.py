"""A whole router on loopback: real HTTPS receiver, EventRouter on a SQLite file, the HTTP API, observers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.audit import AuditLog
from cxone_eventbridge.observe.events import DeliveryDeadLettered, DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.observe.metrics import RouterMetrics
from cxone_eventbridge.observe.operations_log import OperationsLog
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.circuit import CircuitPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
from cxone_eventbridge.sandbox.receiver import RunningReceiver
from cxone_eventbridge.ssrf import EgressPolicy

from ..waiting import HANG_GUARD_S

INGEST_KEY = "test-ingest-key-0123456789"
LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8"])


def fast_options() -> DispatcherOptions:
    """Tiny retry delays and polls, so nothing in a test waits long."""
    return DispatcherOptions(
        retry_base_s=0.005,
        retry_cap_s=0.02,
        max_retry_after_s=0.05,
        poll_interval_s=0.02,
        housekeeping_interval_s=0.05,
        circuit=CircuitPolicy(failure_threshold=10_000, open_s=0.05),
    )


def target_for(name: str, url: str, **fields: Any) -> IntegrationTarget:
    """A webhook target on a loopback receiver with a fast retry policy."""
    values: dict[str, Any] = {
        "name": name,
        "endpoint": f"{url}/hooks/{name}",
        "retry_policy": RetryPolicy(max_retries=1),
    }
    values.update(fields)
    return IntegrationTarget(**values)


class Outcomes:
    """An observer that lets a test wait for deliveries to settle, without sleeping."""

    def __init__(self) -> None:
        self.delivered: list[DeliverySucceeded] = []
        self.dead: list[DeliveryDeadLettered] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ObservedEvent) -> None:
        if isinstance(event, DeliverySucceeded):
            self.delivered.append(event)
        elif isinstance(event, DeliveryDeadLettered):
            self.dead.append(event)
        self._changed.set()

    async def wait(self, *, delivered: int = 0, dead: int = 0, limit_s: float = HANG_GUARD_S) -> None:
        async with asyncio.timeout(limit_s):
            while len(self.delivered) < delivered or len(self.dead) < dead:
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Stack:
    """One running router service and what it is made of."""

    service: RouterAPI
    router: EventRouter
    receiver: RunningReceiver
    metrics: RouterMetrics
    outcomes: Outcomes
    audit_path: Path
    session: aiohttp.ClientSession
    bus: ObserverBus
    audit: AuditLog

    def audit_records(self) -> list[dict[str, Any]]:
        """The audit log's records, after writing the delivery lines still waiting for their batch."""
        self.audit.flush()
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    @property
    def url(self) -> str:
        return self.service.url

    async def call(
        self, method: str, path: str, *, key: str | None = INGEST_KEY, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        """One request; the status, the JSON body (or None) and the headers."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.session.request(method, self.url + path, headers=headers, **kwargs) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return response.status, body, response.headers


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def router_stack(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path
) -> AsyncIterator[StackFactory]:
    """An async factory of started router services (HTTP API on 127.0.0.1:0), stopped at teardown."""
    stacks: list[Stack] = []

    async def factory(
        *,
        receiver_status: int = 200,
        targets: list[str] | None = None,
        config: dict[str, Any] | None = None,
        max_queue_bytes: int | None = None,
        queue_url: str | None = None,
        start_router: bool = True,
        audit_path: Path | None = None,
    ) -> Stack:
        receiver = await https_receiver(status=receiver_status)
        bus = ObserverBus()
        metrics, status, outcomes = RouterMetrics(), StatusTracker(), Outcomes()
        audit_path = audit_path if audit_path is not None else tmp_path / f"audit-{len(stacks)}.log"
        audit = AuditLog(audit_path)
        for observer in (metrics.observe, status.observe, audit.observe, outcomes):
            bus.subscribe(observer)
        bus.subscribe(OperationsLog(status).observe)  # as `router serve` has it: after status
        routed = [target_for(name, receiver.url) for name in (targets if targets is not None else ["crm"])]
        router_config = RouterConfig(
            queue_url=queue_url or sqlite_url(tmp_path / f"queue-{len(stacks)}.db"),
            # One owner per router, as `router serve` has it (host:port): routers sharing a queue under one
            # owner would each reclaim the other's live leases as a crashed incarnation's, and send twice.
            owner=f"stack-{len(stacks)}",
            migrate=True,
            dispatcher=fast_options(),
            egress=LOOPBACK,
            ssl_context=ssl_context_for(str(receiver.ca_path)),
            sqlite_max_size_bytes=max_queue_bytes,
        )
        router = build_router(router_config, targets=routed, bus=bus)
        if start_router:
            await router.start()
        service_config = ServiceConfig(
            **{"host": "127.0.0.1", "port": 0, "ingest_key": SecretStr(INGEST_KEY), **(config or {})}
        )
        service = RouterAPI(router, service_config, bus=bus, metrics=metrics, status=status, audit=audit)
        await service.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        stack = Stack(service, router, receiver, metrics, outcomes, audit_path, session, bus, audit)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        await stack.session.close()
        await stack.service.stop()
        await stack.router.stop(deadline_s=1.0)
