"""Two routers on one PostgreSQL queue: a circuit one of them opens holds the target for both, and the
success of a probe closes it for both."""

from __future__ import annotations

from typing import Any

import pytest

from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.router.circuit import CircuitPolicy
from cxone_eventbridge.router.composition import RouterConfig, build_router
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.event_router import EventRouter

from ..waiting import until
from .conftest import LOOPBACK, ChaosReceiver, Ledger, fast_options, make_target

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


async def test_a_circuit_opened_by_one_router_holds_the_target_for_the_other(
    chaos_receiver: Any, postgres_dsn: str, pg_schema: str
) -> None:
    """Router A's breaker opens on failures: the queue records it and router B sees it open; once the
    endpoint recovers, a probe's success closes it for both and everything is delivered."""
    receiver: ChaosReceiver = await chaos_receiver(ok_rate=0.0)  # every request fails, until the test says
    routers: list[EventRouter] = []
    ledger = Ledger()
    try:
        for owner in ("a", "b"):
            bus = ObserverBus()
            bus.subscribe(ledger)
            options = fast_options(circuit=CircuitPolicy(failure_threshold=2, open_s=0.5, max_open_s=1.0))
            config = RouterConfig(
                queue_url=f"{postgres_dsn}?schema={pg_schema}",
                owner=owner,
                migrate=True,
                dispatcher=options,
                egress=LOOPBACK,
                ssl_context=ssl_context_for(str(receiver.ca_path)),
            )
            router = build_router(config, targets=[make_target("crm", receiver.url, max_retries=10)], bus=bus)
            await router.start()
            routers.append(router)
        a, b = routers
        await a.ingest([{"id": f"e{i}"} for i in range(10)])
        await until(lambda: _has_circuit(b, "crm"))
        receiver.ok_rate = 1.0
        await ledger.wait_for(10)
        assert len(ledger.delivered) == 10
        await until(lambda: _no_circuit(a))
    finally:
        for router in routers:
            await router.stop(deadline_s=1.0)


async def _has_circuit(router: EventRouter, name: str) -> bool:
    return name in await router.queue.circuits()


async def _no_circuit(router: EventRouter) -> bool:
    return not await router.queue.circuits()
