"""The SQLite delivery queue against real files in tmp_path, with explicit times (no clock, no sleeps)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import QueueClosedError, QueueFullError
from cxone_eventbridge.router.queue import DeliveryQueue, QueuedEvent, delivery_id_for
from cxone_eventbridge.router.sqlite_queue import SQLiteQueue

T0 = 1_700_000_000.0
ALL = {"a": 1000, "b": 1000, "c": 1000}


def event(event_id: str, *targets: str, priority: int = 5, at: float = T0, body: bytes | None = None) -> QueuedEvent:
    return QueuedEvent(
        event_id=event_id,
        body=body if body is not None else f'{{"id":"{event_id}"}}'.encode(),
        priority=priority,
        targets=targets,
        accepted_at=at,
    )


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SQLiteQueue]:
    q = SQLiteQueue(tmp_path / "queue.db")
    await q.open()
    yield q
    await q.close()


async def test_satisfies_the_protocol(queue: SQLiteQueue) -> None:
    """SQLiteQueue is a DeliveryQueue, so the dispatcher can take it (or any other backend)."""
    assert isinstance(queue, DeliveryQueue)


async def test_put_lease_ack_round_trip_keeps_body_and_ids(queue: SQLiteQueue) -> None:
    """A put event comes back from lease with its exact body, its ids and zero attempts, then acks."""
    body = '{"eventType":"call.answered","note":"héllo"}'.encode()
    [result] = await queue.put([event("e1", "a", body=body)])
    assert result.created == ("a",)
    [d] = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    assert (d.event_id, d.target, d.body, d.attempts) == ("e1", "a", body, 0)
    assert d.delivery_id == delivery_id_for("e1", "a")
    await queue.ack(d, now=T0 + 1, status=200)
    stats = await queue.stats()
    assert (stats.pending, stats.leased, stats.delivered, stats.dead) == (0, 0, 1, 0)
    assert await queue.lease(capacity=ALL, limit=10, now=T0 + 100, lease_s=30) == []


async def test_delivery_id_is_stable_per_event_and_target() -> None:
    """The webhook-id is derived from (event id, target): equal inputs give equal ids, others differ."""
    assert delivery_id_for("e1", "a") == delivery_id_for("e1", "a")
    assert delivery_id_for("e1", "a") != delivery_id_for("e1", "b")
    assert delivery_id_for("e1", "a").startswith("msg_")


async def test_put_is_idempotent_on_event_id_and_target(queue: SQLiteQueue) -> None:
    """The same event id twice yields one set of deliveries; a new target on the repeat is added alone."""
    first = await queue.put([event("e1", "a", "b")])
    again = await queue.put([event("e1", "a", "b"), event("e1", "a", "b", "c")])
    assert first[0].created == ("a", "b")
    assert again[0].duplicate
    assert again[1].created == ("c",)
    leased = await queue.lease(capacity=ALL, limit=100, now=T0, lease_s=30)
    assert sorted(d.target for d in leased) == ["a", "b", "c"]


async def test_event_without_targets_is_not_stored(queue: SQLiteQueue) -> None:
    """An event that matched nothing creates no delivery."""
    [result] = await queue.put([event("e1")])
    assert result.created == ()
    assert (await queue.stats()).pending == 0


async def test_committed_put_survives_reopening_the_file(tmp_path: Path) -> None:
    """What put returned for is on disk: a new queue on the same file leases it."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        await q.put([event("e1", "a")])
    async with SQLiteQueue(path) as q:
        [d] = await q.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
        assert d.event_id == "e1"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_synchronous_full_is_the_default(queue: SQLiteQueue) -> None:
    """Commits are durable against a machine crash unless configured otherwise."""
    assert queue.synchronous == "FULL"


async def test_lower_priority_number_goes_first_and_fifo_within(queue: SQLiteQueue) -> None:
    """Priority 1 is leased before priority 5; within a priority, in order of acceptance."""
    await queue.put([event("low1", "a", priority=5, at=T0)])
    await queue.put([event("high1", "a", priority=1, at=T0 + 1)])
    await queue.put([event("high2", "a", priority=1, at=T0 + 2)])
    await queue.put([event("low2", "a", priority=5, at=T0 + 3)])
    order = []
    for _ in range(4):
        [d] = await queue.lease(capacity=ALL, limit=1, now=T0 + 10, lease_s=30)
        order.append(d.event_id)
    assert order == ["high1", "high2", "low1", "low2"]


async def test_sustained_high_priority_load_does_not_starve_priority_9(queue: SQLiteQueue) -> None:
    """Weighted fairness: under a flood of priority 0, priority 9 still gets about 1 slot in 512."""
    await queue.put([event(f"p0-{i}", "a", priority=0) for i in range(3000)])
    await queue.put([event(f"p9-{i}", "a", priority=9) for i in range(50)])
    leased = []
    for _ in range(40):
        leased += await queue.lease(capacity=ALL, limit=50, now=T0, lease_s=30)
    p9 = [d for d in leased if d.priority == 9]
    assert len(leased) == 2000
    assert 2 <= len(p9) <= 6  # 2000 / 513 ~ 4: served, but rarely
    assert leased[0].priority == 0


async def test_per_target_capacity_prevents_head_of_line_blocking(queue: SQLiteQueue) -> None:
    """A target at its cap is skipped without blocking another target's later work."""
    await queue.put([event(f"a{i}", "a", at=T0) for i in range(100)])
    await queue.put([event("b0", "b", at=T0 + 1)])
    leased = await queue.lease(capacity={"a": 2, "b": 5}, limit=50, now=T0 + 2, lease_s=30)
    assert sorted(d.target for d in leased) == ["a", "a", "b"]
    assert await queue.lease(capacity={"a": 0}, limit=50, now=T0 + 2, lease_s=30) == []


async def test_lease_expires_and_the_delivery_is_leased_again(queue: SQLiteQueue) -> None:
    """Work leased by a process that died is delivered again once its lease ends."""
    await queue.put([event("e1", "a")])
    [first] = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    assert await queue.lease(capacity=ALL, limit=10, now=T0 + 29, lease_s=30) == []
    [again] = await queue.lease(capacity=ALL, limit=10, now=T0 + 30, lease_s=30)
    assert again.delivery_id == first.delivery_id
    assert again.attempts == 0  # a lost lease does not spend a retry


async def test_restart_reclaims_previous_incarnations_leases_at_once(tmp_path: Path) -> None:
    """A restarted router takes back its dead predecessor's leases without waiting for them to expire."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path, owner="r1", incarnation="old") as old:
        await old.put([event("e1", "a"), event("e2", "a")])
        assert len(await old.lease(capacity=ALL, limit=10, now=T0, lease_s=30)) == 2
    async with SQLiteQueue(path, owner="other", incarnation="x") as other:
        await other.put([event("e3", "a")])
        assert len(await other.lease(capacity=ALL, limit=10, now=T0, lease_s=30)) == 1
    async with SQLiteQueue(path, owner="r1", incarnation="new") as new:
        assert await new.reclaim() == 2
        leased = await new.lease(capacity=ALL, limit=10, now=T0 + 1, lease_s=30)
        assert sorted(d.event_id for d in leased) == ["e1", "e2"]  # another owner's lease is left to expire


async def test_reschedule_spends_an_attempt_and_waits_for_next_attempt_at(queue: SQLiteQueue) -> None:
    """A retry is a row with next_attempt_at: not leasable before it, leasable after, attempts counted."""
    await queue.put([event("e1", "a")])
    [d] = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    await queue.reschedule(d, next_attempt_at=T0 + 5, now=T0, last_status=503, last_error=None)
    assert await queue.lease(capacity=ALL, limit=10, now=T0 + 4.9, lease_s=30) == []
    [again] = await queue.lease(capacity=ALL, limit=10, now=T0 + 5, lease_s=30)
    assert again.attempts == 1


async def test_release_returns_the_lease_without_spending_an_attempt(queue: SQLiteQueue) -> None:
    """Released work is leasable at once with the same attempt count."""
    await queue.put([event("e1", "a")])
    leased = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    await queue.release(leased)
    [again] = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    assert again.attempts == 0


async def test_stale_lease_holder_cannot_reschedule_over_the_new_one(tmp_path: Path) -> None:
    """After a lease expired and another process took it, the old holder's reschedule changes nothing."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path, owner="one") as one:
        await one.put([event("e1", "a")])
        [stale] = await one.lease(capacity=ALL, limit=1, now=T0, lease_s=1)
    async with SQLiteQueue(path, owner="two") as two:
        [fresh] = await two.lease(capacity=ALL, limit=1, now=T0 + 2, lease_s=30)
    async with SQLiteQueue(path, owner="one", incarnation=None) as one_again:
        await one_again.reschedule(stale, next_attempt_at=T0 + 100, now=T0 + 3, last_status=500, last_error=None)
        assert (await one_again.stats()).leased == 1
    assert fresh.delivery_id == stale.delivery_id


async def test_dead_letters_keep_reason_status_attempts_and_replay(queue: SQLiteQueue) -> None:
    """A dead letter records why; replay makes it pending again with a fresh retry budget."""
    await queue.put([event("e1", "a"), event("e2", "b")])
    leased = await queue.lease(capacity=ALL, limit=10, now=T0, lease_s=30)
    for d in leased:
        await queue.dead_letter(d, reason="permanent", now=T0 + 1, last_status=400, last_error="bad request")
    letters = await queue.dead_letters()
    assert {(x.event_id, x.reason, x.last_status, x.attempts) for x in letters} == {
        ("e1", "permanent", 400, 1),
        ("e2", "permanent", 400, 1),
    }
    assert [x.target for x in await queue.dead_letters(target="b")] == ["b"]
    assert await queue.replay(now=T0 + 2, delivery_ids=[delivery_id_for("e1", "a")]) == 1
    [d] = await queue.lease(capacity=ALL, limit=10, now=T0 + 2, lease_s=30)
    assert (d.event_id, d.attempts) == ("e1", 0)
    assert await queue.replay(now=T0 + 3, target="b") == 1
    assert await queue.replay(now=T0 + 3) == 0
    assert (await queue.stats()).dead == 0


async def test_expire_dead_letters_what_waited_too_long(queue: SQLiteQueue) -> None:
    """Pending deliveries older than the maximum age become dead letters with reason expired."""
    await queue.put([event("old", "a", at=T0), event("young", "a", at=T0 + 3600)])
    expired = await queue.expire(now=T0 + 86_401, max_age_s=86_400)
    assert [(x.event_id, x.reason, x.attempts) for x in expired] == [("old", "expired", 0)]
    [d] = await queue.lease(capacity=ALL, limit=10, now=T0 + 86_401, lease_s=30)
    assert d.event_id == "young"


async def test_prune_deletes_delivered_rows_after_retention_only(queue: SQLiteQueue) -> None:
    """Delivered rows older than the retention go; pending and dead letters stay."""
    await queue.put([event("done", "a"), event("dead", "b"), event("waiting", "c", at=T0 + 10**6)])
    leased = await queue.lease(capacity={"a": 1, "b": 1}, limit=10, now=T0, lease_s=30)
    for d in leased:
        if d.target == "a":
            await queue.ack(d, now=T0)
        else:
            await queue.dead_letter(d, reason="permanent", now=T0, last_status=404, last_error=None)
    assert await queue.prune(now=T0 + 10, retention_s=60) == 0
    assert await queue.prune(now=T0 + 61, retention_s=60) == 1
    stats = await queue.stats()
    assert (stats.pending, stats.delivered, stats.dead) == (1, 0, 1)
    # The pruned event's id is forgotten: dedup holds for the retention period.
    [again] = await queue.put([event("done", "a")])
    assert again.created == ("a",)


async def test_full_storage_raises_queue_full_and_keeps_what_was_accepted(tmp_path: Path) -> None:
    """A full disk surfaces as QueueFullError; nothing committed before is lost and acks still work."""
    async with SQLiteQueue(tmp_path / "q.db", max_size_bytes=256 * 1024) as q:
        accepted = 0
        refused: QueueFullError | None = None
        for i in range(100):
            try:
                await q.put([event(f"e{i}", "a", body=b"x" * 20_000)])
            except QueueFullError as exc:
                refused = exc
                break
            accepted += 1
        assert refused is not None
        assert "full" in str(refused)
        assert 0 < accepted < 100
        leased = await q.lease(capacity=ALL, limit=500, now=T0, lease_s=30)
        assert len(leased) == accepted
        for d in leased:
            await q.ack(d, now=T0)
        assert (await q.stats()).delivered == accepted


async def test_concurrent_puts_share_commits_and_all_land(tmp_path: Path) -> None:
    """Group commit: many concurrent puts all succeed and are all on disk afterwards."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        results = await asyncio.gather(*(q.put([event(f"e{i}", "a", "b")]) for i in range(300)))
        assert all(r[0].created == ("a", "b") for r in results)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 600


async def test_disabled_targets_persist(tmp_path: Path) -> None:
    """A disabled target is remembered across restarts until enabled."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        await q.disable_target("a", reason="gone", now=T0)
    async with SQLiteQueue(path) as q:
        assert await q.disabled_targets() == {"a": "gone"}
        assert await q.enable_target("a") is True
        assert await q.enable_target("a") is False
        assert await q.disabled_targets() == {}


async def test_closed_queue_refuses_work(tmp_path: Path) -> None:
    """Using a queue after close raises QueueClosedError rather than hanging."""
    q = SQLiteQueue(tmp_path / "q.db")
    await q.open()
    await q.close()
    with pytest.raises(QueueClosedError):
        await q.put([event("e1", "a")])


async def test_invalid_priority_is_refused(queue: SQLiteQueue) -> None:
    """Priorities are 0-9."""
    with pytest.raises(ValueError, match="priority"):
        await queue.put([event("e1", "a", priority=10)])


async def test_purge_deletes_dead_letters_only(queue: SQLiteQueue) -> None:
    """Purge removes the selected dead letters for good and leaves pending work alone."""
    await queue.put([event("e1", "a"), event("e2", "b"), event("e3", "c")])
    leased = await queue.lease(capacity={"a": 1, "b": 1}, limit=10, now=T0, lease_s=30)
    for d in leased:
        await queue.dead_letter(d, reason="permanent", now=T0, last_status=400, last_error=None)
    assert await queue.purge(delivery_ids=[delivery_id_for("e1", "a")]) == 1
    assert await queue.purge(target="b") == 1
    stats = await queue.stats()
    assert (stats.dead, stats.pending) == (0, 1)


async def test_a_large_batch_with_repeated_ids_keeps_each_body_with_its_event(queue: SQLiteQueue) -> None:
    """Over several multi-row INSERT chunks, each delivery carries its own event's body, once per id."""
    await queue.put([event("old", "a")])
    batch = [event(f"e{i}", "a", "b") for i in range(1_100)]
    batch += [event("e7", "a", "b", "c"), event("old", "a", "b"), event("none")]
    results = await queue.put(batch)
    created = {r.event_id: r.created for r in results[-3:]}
    assert created == {"e7": ("c",), "old": ("b",), "none": ()}
    assert all(r.created == ("a", "b") for r in results[:1_100])
    leased = await queue.lease(capacity={"a": 5_000, "b": 5_000, "c": 5_000}, limit=500, now=T0 + 1, lease_s=30)
    while len(leased) < 2 * 1_100 + 3:
        more = await queue.lease(capacity={"a": 5_000, "b": 5_000, "c": 5_000}, limit=500, now=T0 + 1, lease_s=30)
        assert more, "every delivery is leasable"
        leased += more
    assert len(leased) == 2 * 1_100 + 3
    for d in leased:
        assert d.body == f'{{"id":"{d.event_id}"}}'.encode()
        assert d.delivery_id == delivery_id_for(d.event_id, d.target)


async def test_acks_of_one_commit_all_land_even_when_a_caller_is_cancelled(queue: SQLiteQueue) -> None:
    """Concurrent acks share one statement; a cancelled caller neither fails nor undoes the others."""
    await queue.put([event(f"e{i}", "a") for i in range(50)])
    leased = await queue.lease(capacity=ALL, limit=50, now=T0, lease_s=30)
    tasks = [asyncio.create_task(queue.ack(d, now=T0 + 1, status=200)) for d in leased]
    await asyncio.sleep(0)  # every ack has joined the group
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None] * 49
    stats = await queue.stats()
    assert (stats.delivered, stats.leased, stats.pending) == (50, 0, 0)
