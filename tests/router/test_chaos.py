"""Done-when: random 5xx, 429s, timeouts and resets lose nothing; every event is delivered or dead-lettered."""

from __future__ import annotations

from typing import Any

import pytest

from cxone_eventbridge.observe.events import DeliveryAttempted
from cxone_eventbridge.router.queue import delivery_id_for

from .conftest import RouterFactory, make_target

pytestmark = pytest.mark.e2e


async def test_ledger_balances_under_random_failures(chaos_receiver: Any, make_router: RouterFactory) -> None:
    """accepted = delivered + dead-lettered (retries exhausted), none missing, none both, each 200 recorded."""
    receiver = await chaos_receiver(seed=11, ok_rate=0.45)
    targets = [make_target(name, receiver.url, max_retries=3, timeout_ms=1000) for name in ("crm", "wfm")]
    router, ledger = await make_router(targets, ca_path=receiver.ca_path)
    accepted: set[tuple[str, str]] = set()
    for batch in range(6):
        ids = await router.ingest(
            [{"id": f"e{batch}-{i}", "eventType": "call.ended"} for i in range(25)], priority=batch % 10
        )
        accepted |= {(event_id, target.name) for event_id in ids for target in targets}
    await ledger.wait_for(len(accepted))

    delivered, dead = set(ledger.delivered), set(ledger.dead)
    assert delivered | dead == accepted
    assert not delivered & dead
    assert {d.reason for d in ledger.dead.values()} <= {"retries_exhausted"}
    assert all(d.attempts == 4 for d in ledger.dead.values())  # 1 attempt + maxRetries 3
    for event_id, target in delivered:
        assert receiver.ok_by_id.get(delivery_id_for(event_id, target), 0) >= 1
    # Every failure kind happened, and was attempted, not just skipped.
    assert {"ok", "503", "500", "429", "reset", "hang"} <= set(receiver.kinds)
    errors = {e.error.split(":")[0] for e in ledger.events if isinstance(e, DeliveryAttempted) and e.error}
    assert any(msg.startswith("timeout") for msg in errors)
    assert dead, "with a 55% failure rate some deliveries should exhaust their retries"
    stats = await router.stats()
    assert (stats.pending, stats.leased, stats.delivered + stats.dead) == (0, 0, len(accepted))
