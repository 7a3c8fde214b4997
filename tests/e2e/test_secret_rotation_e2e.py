"""Signing-secret rotation end to end: sandbox API, routes sync, a real router, receivers verifying by either secret."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from cxone_eventbridge import signing
from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.exceptions import SignatureVerificationError
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliveryDeadLettered, DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.targets_sync import TargetsSync
from cxone_eventbridge.ssrf import EgressPolicy

from ..clocks import ShiftedClock
from ..waiting import HANG_GUARD_S

pytestmark = pytest.mark.e2e

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = signing.generate_signing_secret()
GRACE_S = 3600
EVENTS = 25


class Settled:
    """Counts final outcomes per target and lets the test wait for them."""

    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        self._changed = asyncio.Event()

    def __call__(self, event: ObservedEvent) -> None:
        if isinstance(event, DeliverySucceeded):
            self.delivered[event.target] = self.delivered.get(event.target, 0) + 1
        elif isinstance(event, DeliveryDeadLettered):
            self.dead[event.target] = self.dead.get(event.target, 0) + 1
        self._changed.set()

    async def wait(self, total: int) -> None:
        async with asyncio.timeout(HANG_GUARD_S):
            while sum(self.delivered.values()) + sum(self.dead.values()) < total:
                self._changed.clear()
                await self._changed.wait()


def _router(
    tmp_path: Path,
    options: DispatcherOptions,
    ca_path: Path,
    bus: ObserverBus,
    clock: ShiftedClock,
    targets: list[IntegrationTarget] | None = None,
) -> EventRouter:
    config = RouterConfig(
        queue_url=sqlite_url(tmp_path / "queue.db"),
        owner="test",
        dispatcher=options,
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=ssl_context_for(str(ca_path)),
    )
    return build_router(config, targets=targets or [], bus=bus, clock=clock, queue_clock=clock)


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_receivers_with_the_old_or_the_new_secret_both_verify_during_the_grace_period(
    sandbox_factory: Any, https_receiver: Any, tmp_path: Path
) -> None:
    """During the overlap every delivery verifies with either secret (reference verifier); after it, only the new."""
    clock = ShiftedClock()
    sandbox = sandbox_factory(clock=clock)
    # Each receiver holds one secret and answers 401 to a delivery it cannot verify (a permanent failure).
    keeps_old = await https_receiver(secret=OLD, reject_invalid_signatures=True, clock=clock)
    has_new = await https_receiver(secret=NEW, reject_invalid_signatures=True, clock=clock)
    settled = Settled()
    bus = ObserverBus()
    bus.subscribe(settled)
    options = DispatcherOptions(poll_interval_s=0.02, housekeeping_interval_s=0.05, retry_base_s=0.005)
    router = _router(tmp_path, options, keeps_old.ca_path, bus, clock)
    await router.start()
    try:
        async with CXoneClient.from_settings(sandbox.settings()) as client:
            ids = {}
            for name, receiver in (("keeps-old", keeps_old), ("has-new", has_new)):
                created = await client.targets.create(
                    IntegrationTarget(
                        name=name,
                        endpoint=f"{receiver.url}/hooks/{name}",
                        signing_secret=SecretStr(OLD),
                        retry_policy=RetryPolicy(max_retries=0),
                    )
                )
                assert created.id is not None
                ids[name] = created.id
            sync = TargetsSync(client.routes, router)
            assert sorted((await sync.sync_once()).added) == ["has-new", "keeps-old"]

            for target_id in ids.values():
                rotated = await client.targets.rotate_secret(target_id, secret=NEW, grace_period_s=GRACE_S)
                assert rotated.generated is None
                assert rotated.target.previous_signing_secret is not None
            assert sorted((await sync.sync_once()).changed) == ["has-new", "keeps-old"]

            await router.ingest([{"id": f"e{i}", "eventType": "call.ended"} for i in range(EVENTS)])
            await settled.wait(2 * EVENTS)
            assert settled.dead == {}
            assert settled.delivered == {"keeps-old": EVENTS, "has-new": EVENTS}
            for receiver in (keeps_old, has_new):
                records = receiver.records()
                assert len(records) == EVENTS
                for record in records:
                    assert record["signature_valid"] is True
                    headers, body = _lower(record["headers"]), record["body"].encode()
                    assert len(headers["webhook-signature"].split(" ")) == 2
                    Webhook(OLD).verify(body, headers)  # the reference verifier, holding only the old secret
                    Webhook(NEW).verify(body, headers)  # ... and holding only the new one

            clock.offset = GRACE_S + 1  # the grace period is over
            assert sorted((await sync.sync_once()).changed) == ["has-new", "keeps-old"]  # the old secret left
            await router.ingest([{"id": "after", "eventType": "call.ended"}])
            await settled.wait(2 * EVENTS + 2)
            assert settled.dead == {"keeps-old": 1}  # a receiver that never updated now refuses
            assert settled.delivered["has-new"] == EVENTS + 1
            for receiver in (keeps_old, has_new):
                last = receiver.records()[-1]
                headers, body = _lower(last["headers"]), last["body"].encode()
                assert " " not in headers["webhook-signature"]
                signing.verify(NEW, headers, body, now=clock())
                with pytest.raises(SignatureVerificationError):
                    signing.verify(OLD, headers, body, now=clock())
    finally:
        await router.stop(deadline_s=1.0)


async def test_the_router_stops_signing_with_the_old_secret_at_expiry_even_without_a_sync(
    https_receiver: Any, tmp_path: Path
) -> None:
    """The expiry travels with the target: the router's own clock ends the overlap, not the next sync."""
    clock = ShiftedClock()
    receiver = await https_receiver(secret=NEW, clock=clock)
    settled = Settled()
    bus = ObserverBus()
    bus.subscribe(settled)
    expires = time.time() + 600
    target = IntegrationTarget.model_validate(
        {
            "name": "crm",
            "endpoint": f"{receiver.url}/hooks/crm",
            "signingSecret": NEW,
            "previousSigningSecret": {"secret": OLD, "expiresAt": expires},
        }
    )
    router = _router(tmp_path, DispatcherOptions(poll_interval_s=0.02), receiver.ca_path, bus, clock, [target])
    await router.start()
    try:
        await router.ingest([{"id": "before"}])
        await settled.wait(1)
        clock.offset = 601  # past the expiry by the whole-second timestamp too
        await router.ingest([{"id": "after"}])
        await settled.wait(2)
        before, after = (_lower(r["headers"])["webhook-signature"] for r in receiver.records())
        assert len(before.split(" ")) == 2
        assert len(after.split(" ")) == 1
    finally:
        await router.stop(deadline_s=1.0)
