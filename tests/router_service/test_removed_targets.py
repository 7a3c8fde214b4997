"""A removed target's pending work is dead-lettered at the sync that removes it; a moved endpoint gets the rest."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliveryAttempted, DeliveryDeadLettered, ObservedEvent, ObserverBus
from cxone_eventbridge.observe.reasons import FailureReason, dead_letter_reason
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
from cxone_eventbridge.router.targets_sync import TargetsSync

from ..waiting import HANG_GUARD_S
from .conftest import LOOPBACK, Outcomes, fast_options

EVENTS = 10


def _slow_retries() -> Any:
    # Retries a few hundred milliseconds apart: the deliveries are still pending when the sync runs.
    return replace(fast_options(), retry_base_s=0.3, retry_cap_s=0.5, max_retry_after_s=0.5)


async def _router(tmp_path: Path, ca_path: Path, bus: ObserverBus) -> EventRouter:
    router = EventRouter(
        SQLiteQueue(tmp_path / "q.db"),
        bus=bus,
        options=_slow_retries(),
        egress=LOOPBACK,
        ssl_context=ssl_context_for(str(ca_path)),
    )
    await router.start()
    return router


class Attempts:
    """Counts attempts and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self, event: ObservedEvent) -> None:
        if isinstance(event, DeliveryAttempted):
            self.count += 1
            self._changed.set()

    async def reached(self, count: int) -> None:
        async with asyncio.timeout(HANG_GUARD_S):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


def _target(name: str, url: str) -> IntegrationTarget:
    return IntegrationTarget(name=name, endpoint=url, retry_policy=RetryPolicy(max_retries=10))


async def test_removing_a_target_dead_letters_its_pending_deliveries_at_the_sync(
    sandbox: Any, https_receiver: Any, tmp_path: Path
) -> None:
    """Deleted in the API: at the next sync its retrying deliveries are target_removed dead letters, replayable."""
    failing = await https_receiver(status=503)
    healthy = await https_receiver()
    bus, outcomes = ObserverBus(), Outcomes()
    removed: list[DeliveryDeadLettered] = []

    def watch(event: ObservedEvent) -> None:
        if isinstance(event, DeliveryDeadLettered):
            removed.append(event)

    bus.subscribe(outcomes)
    bus.subscribe(watch)
    router = await _router(tmp_path, failing.ca_path, bus)
    try:
        async with CXoneClient.from_settings(sandbox.settings()) as client:
            crm = await client.targets.create(_target("crm", f"{failing.url}/hooks/crm"))
            await client.targets.create(_target("keep", f"{healthy.url}/hooks/keep"))
            assert crm.id is not None
            sync = TargetsSync(client.routes, router)
            await sync.sync_once()
            await router.ingest([{"id": f"e{i}"} for i in range(EVENTS)])
            await outcomes.wait(delivered=EVENTS)  # "keep" got them all; "crm" keeps answering 503
            assert failing.request_count >= 1

            await client.targets.delete(crm.id, name="crm")
            result = await sync.sync_once()
            assert result.removed == ("crm",)
            await outcomes.wait(dead=EVENTS)  # settled by the sync itself, or by the attempt then in flight
            assert {(d.target, d.reason) for d in removed} == {("crm", "target_removed")}
            assert sorted(d.event_id for d in removed) == sorted(f"e{i}" for i in range(EVENTS))
            assert dead_letter_reason("target_removed", None, None) is FailureReason.TARGET_REMOVED
            stats = await router.stats()
            assert (stats.pending, stats.leased, stats.dead) == (0, 0, EVENTS)

            # It comes back (healthy now) and the dead letters are replayed to it.
            await client.targets.create(_target("crm", f"{healthy.url}/hooks/crm"))
            assert (await sync.sync_once()).added == ("crm",)
            assert await router.queue.replay(target="crm") == EVENTS
            await outcomes.wait(delivered=2 * EVENTS)
            paths = [record["path"] for record in healthy.records()]
            assert paths.count("/hooks/crm") == EVENTS
    finally:
        await router.stop(deadline_s=1.0)


async def test_a_changed_endpoint_receives_the_pending_deliveries(
    sandbox: Any, https_receiver: Any, tmp_path: Path
) -> None:
    """Moved in the API while its deliveries retry: after the sync, they all arrive at the new endpoint."""
    old = await https_receiver(status=503)
    new = await https_receiver()
    bus, outcomes, attempts = ObserverBus(), Outcomes(), Attempts()
    bus.subscribe(outcomes)
    bus.subscribe(attempts)
    router = await _router(tmp_path, old.ca_path, bus)
    try:
        async with CXoneClient.from_settings(sandbox.settings()) as client:
            moving = await client.targets.create(_target("moving", f"{old.url}/hooks/v1"))
            assert moving.id is not None
            sync = TargetsSync(client.routes, router)
            await sync.sync_once()
            await router.ingest([{"id": f"e{i}"} for i in range(EVENTS)])
            await attempts.reached(EVENTS)  # every delivery failed once at the old endpoint and waits to retry
            await client.targets.patch(moving.id, {"endpoint": f"{new.url}/hooks/v2"})
            assert (await sync.sync_once()).changed == ("moving",)
            await outcomes.wait(delivered=EVENTS)
            assert outcomes.dead == []
            assert sorted(r["path"] for r in new.records()) == ["/hooks/v2"] * EVENTS
    finally:
        await router.stop(deadline_s=1.0)


async def test_a_target_removed_between_two_runs_loses_its_pending_work_at_start(
    https_receiver: Any, tmp_path: Path
) -> None:
    """Restarted with a table (a targets file) without "gone": its pending deliveries become dead letters."""
    failing = await https_receiver(status=503)
    bus, outcomes = ObserverBus(), Outcomes()
    bus.subscribe(outcomes)
    first = await _router(tmp_path, failing.ca_path, bus)
    first.set_targets([_target("gone", f"{failing.url}/hooks/gone"), _target("kept", f"{failing.url}/hooks/kept")])
    await first.ingest([{"id": f"e{i}"} for i in range(3)])
    await first.stop(deadline_s=1.0)

    second = EventRouter(
        SQLiteQueue(tmp_path / "q.db"), targets=[_target("kept", f"{failing.url}/hooks/kept")], bus=bus
    )
    assert await second.retire_unconfigured() == []  # not started: nothing is touched
    await second.start()
    try:
        letters = await second.retire_unconfigured()
        assert sorted((x.event_id, x.target, x.reason) for x in letters) == [
            (f"e{i}", "gone", "target_removed") for i in range(3)
        ]
        stats = await second.stats()
        assert stats.pending_by_target.get("gone", 0) == 0
        assert await second.retire_unconfigured() == []
    finally:
        await second.stop(deadline_s=1.0)
