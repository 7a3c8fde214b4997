"""Router test helpers: fast dispatcher options, targets for loopback receivers, a delivery ledger."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy, TargetAuthentication
from cxone_eventbridge.observe.events import DeliveryDeadLettered, DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.circuit import CircuitPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.receiver import server_ssl_context
from cxone_eventbridge.ssrf import EgressPolicy

from ..waiting import HANG_GUARD_S

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8"])


def fast_options(**overrides: Any) -> DispatcherOptions:
    """Dispatcher options with tiny retry delays and polls, so nothing in a test waits long."""
    values: dict[str, Any] = {
        "retry_base_s": 0.005,
        "retry_cap_s": 0.02,
        "max_retry_after_s": 0.05,
        "poll_interval_s": 0.02,
        "housekeeping_interval_s": 0.05,
        "circuit": CircuitPolicy(failure_threshold=10_000, open_s=0.05),
    }
    values.update(overrides)
    return DispatcherOptions(**values)


def make_target(
    name: str, url: str, *, max_retries: int = 3, timeout_ms: int = 5000, **fields: Any
) -> IntegrationTarget:
    """A webhook target for a loopback receiver, signed with SECRET and a bearer token."""
    values: dict[str, Any] = {
        "name": name,
        "endpoint": url + f"/hooks/{name}",
        "signing_secret": SecretStr(SECRET),
        "authentication": TargetAuthentication(type="bearer", value=SecretStr("token-123")),
        "retry_policy": RetryPolicy(max_retries=max_retries, timeout_ms=timeout_ms),
    }
    values.update(fields)
    return IntegrationTarget(**values)


class Ledger:
    """Observer that records final outcomes per (event id, target) and lets a test wait for them."""

    def __init__(self) -> None:
        self.delivered: dict[tuple[str, str], DeliverySucceeded] = {}
        self.dead: dict[tuple[str, str], DeliveryDeadLettered] = {}
        self.events: list[ObservedEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: ObservedEvent) -> None:
        self.events.append(event)
        if isinstance(event, DeliverySucceeded):
            self.delivered[(event.event_id, event.target)] = event
        elif isinstance(event, DeliveryDeadLettered):
            self.dead[(event.event_id, event.target)] = event
        self._changed.set()

    @property
    def settled(self) -> int:
        return len(self.delivered) + len(self.dead)

    async def wait_for(self, count: int, limit_s: float = HANG_GUARD_S) -> None:
        """Wait until ``count`` deliveries are settled (delivered or dead-lettered)."""
        async with asyncio.timeout(limit_s):
            while self.settled < count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_until(self, predicate: Callable[[], bool], limit_s: float = HANG_GUARD_S) -> None:
        """Wait until ``predicate()`` holds, checking it after each observed record."""
        async with asyncio.timeout(limit_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


class HeldRequests:
    """A receiver ``sleep`` (with ``latency_ms``) that holds every request until released.

    It replaces wall-clock latencies: a test waits until ``count`` requests are held, and they stay in flight
    for as long as the test needs, however loaded the machine is.
    """

    def __init__(self) -> None:
        self.held = 0
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.held += 1
        self._arrived.set()
        await self._released.wait()

    async def wait_for(self, count: int, limit_s: float = HANG_GUARD_S) -> None:
        """Wait until ``count`` requests have reached the receiver (and are held, unless released)."""
        async with asyncio.timeout(limit_s):
            while self.held < count:
                self._arrived.clear()
                await self._arrived.wait()

    def release(self) -> None:
        """Let every held request, and every later one, be answered at once."""
        self._released.set()


@pytest.fixture
def held_requests() -> Iterator[HeldRequests]:
    """A HeldRequests released at teardown (list it after the receiver fixtures, so it is torn down first)."""
    held = HeldRequests()
    yield held
    held.release()


RouterFactory = Callable[..., Awaitable[tuple[EventRouter, Ledger]]]


@pytest.fixture
async def make_router(tmp_path: Path) -> AsyncIterator[RouterFactory]:
    """An async factory of started EventRouters (built by the composition root) on a SQLite file in
    tmp_path, trusting ``ca_path``; a ``clock`` given drives the queue's time too."""
    routers: list[EventRouter] = []

    async def factory(
        targets: list[IntegrationTarget],
        *,
        ca_path: Path,
        db: str = "queue.db",
        options: DispatcherOptions | None = None,
        clock: Callable[[], float] | None = None,
        **kwargs: Any,
    ) -> tuple[EventRouter, Ledger]:
        bus = ObserverBus()
        ledger = Ledger()
        bus.subscribe(ledger)
        config = RouterConfig(
            queue_url=sqlite_url(tmp_path / db),
            owner="test",
            dispatcher=options if options is not None else fast_options(),
            egress=kwargs.pop("egress", LOOPBACK),
            ssl_context=ssl_context_for(str(ca_path)),
        )
        if clock is not None:
            kwargs.update(clock=clock, queue_clock=clock)
        router = build_router(config, targets=targets, bus=bus, **kwargs)
        await router.start()
        routers.append(router)
        return router, ledger

    yield factory
    for router in routers:
        await router.stop(deadline_s=1.0)


class ChaosReceiver:
    """An HTTPS receiver that fails at random: 5xx, 429 with Retry-After, hangs, resets.

    It answers 200 to a share of requests and counts, per ``webhook-id``, how many got that 200. A hung
    request is answered only when the receiver stops, so it outlasts any per-attempt timeout however slow
    the machine is: the client gives up first, every time.
    """

    def __init__(self, *, seed: int, ok_rate: float) -> None:
        self._random = random.Random(seed)
        self.ok_rate = ok_rate
        self._stopping = asyncio.Event()
        self.ok_by_id: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self.url = ""
        self._runner: Any = None

    async def handle(self, request: Any) -> Any:
        await request.read()
        roll = self._random.random()
        rest = (1 - self.ok_rate) / 5
        if roll < self.ok_rate:
            kind = "ok"
        else:
            kind = ["503", "500", "429", "reset", "hang"][min(4, int((roll - self.ok_rate) / rest))]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "ok":
            msg_id = request.headers["webhook-id"]
            self.ok_by_id[msg_id] = self.ok_by_id.get(msg_id, 0) + 1
            return web.Response(status=200, text="{}")
        if kind == "reset":
            request.transport.abort()
            return web.Response(status=500)
        if kind == "hang":
            await self._stopping.wait()
            return web.Response(status=200, text="{}")  # too late: the client has given up
        if kind == "429":
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.Response(status=int(kind))

    async def start(self, certs_dir: Path) -> None:
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # resets are the point here
        certs = ensure_certificates(certs_dir)
        self.ca_path = certs.ca
        self._runner = web.ServerRunner(
            web.Server(self.handle, access_log=None), handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs))
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping.set()
        await self._runner.cleanup()


@pytest.fixture
async def chaos_receiver(receiver_certs_dir: Path) -> AsyncIterator[Callable[..., Awaitable[ChaosReceiver]]]:
    """An async factory of ChaosReceivers, stopped at teardown."""
    started: list[ChaosReceiver] = []

    async def factory(*, seed: int = 7, ok_rate: float = 0.4) -> ChaosReceiver:
        receiver = ChaosReceiver(seed=seed, ok_rate=ok_rate)
        await receiver.start(receiver_certs_dir)
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        await receiver.stop()
