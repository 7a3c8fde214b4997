"""`--from-api`: the routes table from a real sandbox applied to a running EventRouter, without a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.exceptions import APIError
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy, RoutesTable, TargetAuthentication
from cxone_eventbridge.observe.audit import AuditLog
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
from cxone_eventbridge.router.targets_sync import TargetsSync
from cxone_eventbridge.sandbox.receiver import RunningReceiver

from .conftest import LOOPBACK, Outcomes, fast_options

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_additions_changes_and_deletions_apply_to_the_running_router(
    sandbox: object,
    https_receiver: Callable[..., Awaitable[RunningReceiver]],
    tmp_path: Path,
) -> None:
    """A target created, changed and deleted through the API is routed to, re-routed and dropped by sync_once."""
    receiver = await https_receiver(secret=SECRET)
    bus, outcomes = ObserverBus(), Outcomes()
    bus.subscribe(outcomes)
    audit = AuditLog(tmp_path / "audit.log")
    client_bus = ObserverBus()
    client_bus.subscribe(audit.observe)
    router = EventRouter(
        SQLiteQueue(tmp_path / "q.db"),
        bus=bus,
        options=fast_options(),
        egress=LOOPBACK,
        ssl_context=ssl_context_for(str(receiver.ca_path)),
    )
    await router.start()
    try:
        async with CXoneClient.from_settings(sandbox.settings(), bus=client_bus) as client:  # type: ignore[attr-defined]
            sync = TargetsSync(client.routes, router)
            assert (await sync.sync_once()).changes == 0
            created = await client.targets.create(
                IntegrationTarget(
                    name="crm",
                    endpoint=f"{receiver.url}/hooks/v1",
                    signing_secret=SecretStr(SECRET),
                    retry_policy=RetryPolicy(max_retries=1),
                )
            )
            assert created.id is not None
            result = await sync.sync_once()
            assert result.added == ("crm",)
            assert router.target_names() == ["crm"]
            assert (await sync.sync_once()).changes == 0  # nothing changed, nothing re-applied

            await router.ingest([{"id": "e1"}])
            await outcomes.wait(delivered=1)
            first = receiver.records()[-1]
            assert first["path"] == "/hooks/v1"
            assert first["signature_valid"] is True  # the secret came from the routes table

            await client.targets.patch(created.id, {"endpoint": f"{receiver.url}/hooks/v2"})
            assert (await sync.sync_once()).changed == ("crm",)
            await router.ingest([{"id": "e2"}])
            await outcomes.wait(delivered=2)
            assert receiver.records()[-1]["path"] == "/hooks/v2"

            await client.targets.delete(created.id, name="crm")
            assert (await sync.sync_once()).removed == ("crm",)
            assert router.target_names() == []
            await router.ingest([{"id": "e3"}])
            assert (await router.stats()).pending == 0
            assert len(receiver.records()) == 2
    finally:
        await router.stop(deadline_s=1.0)
        audit.close()
    actions = [json.loads(line)["action"] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert actions == ["create", "patch", "delete"]
    assert SECRET.removeprefix("whsec_") not in (tmp_path / "audit.log").read_text()


async def test_a_failing_fetch_keeps_the_current_table_and_the_loop_goes_on(tmp_path: Path) -> None:
    """run() logs an API failure, keeps routing on the table it has, and syncs again on the next tick."""
    router = EventRouter(SQLiteQueue(tmp_path / "q.db"), options=fast_options(), egress=LOOPBACK)
    calls = 0
    good = IntegrationTarget(name="crm", endpoint="https://127.0.0.1:9/hooks")

    async def fetch() -> RoutesTable:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise APIError("the control plane is down")
        return RoutesTable(items=[good] if calls < 3 else [])

    ticks = 0

    async def sleep(_seconds: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 3:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    sync = TargetsSync(fetch, router, interval_s=5.0, sleep=sleep)
    await sync.sync_once()
    with pytest.raises(asyncio.CancelledError):
        await sync.run()
    assert (calls, sync.failures, sync.syncs) == (4, 1, 3)
    assert router.target_names() == []  # the third fetch (an empty table) removed it


async def test_a_target_the_router_refuses_is_skipped_and_the_rest_sync(tmp_path: Path) -> None:
    """A target with an unresolved secret reference is skipped with a warning; the others apply."""
    router = EventRouter(SQLiteQueue(tmp_path / "q.db"), options=fast_options(), egress=LOOPBACK)
    bad = IntegrationTarget(
        name="bad",
        endpoint="https://127.0.0.1:9/a",
        authentication=TargetAuthentication(type="bearer", value=SecretStr("${env:NOPE}")),
    )
    ok = IntegrationTarget(name="ok", endpoint="https://127.0.0.1:9/b")

    async def fetch() -> RoutesTable:
        return RoutesTable(items=[bad, ok])

    result = await TargetsSync(fetch, router).sync_once()
    assert (result.added, result.skipped) == (("ok",), ("bad",))
    assert router.target_names() == ["ok"]
