"""The queue contract: what every backend does, checked against each (SQLite, PostgreSQL) on real storage."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest

from cxone_eventbridge.exceptions import QueueClosedError
from cxone_eventbridge.router.archive import archive_for
from cxone_eventbridge.router.queue import (
    DeadLetterStore,
    Delivery,
    DeliveryQueue,
    Maintenance,
    TargetLimits,
    TargetStateStore,
    WorkCycle,
    delivery_id_for,
)
from cxone_eventbridge.router.queue.archive_records import (
    AttemptRecord,
    ReplayJob,
    ReplayState,
    replay_event_id,
)
from cxone_eventbridge.router.queue.protocols import EventArchive
from cxone_eventbridge.router.queue.scheduler import RATE_LEAD_S, rate_spacing

from .conftest import T0, ManualClock, QueueFactory, event

ALL = {"a": 1000, "b": 1000, "c": 1000}


async def test_satisfies_every_protocol(queue: DeliveryQueue) -> None:
    """The backend is a DeliveryQueue and each of its four jobs, so the dispatcher can take any backend."""
    for protocol in (DeliveryQueue, WorkCycle, DeadLetterStore, Maintenance, TargetStateStore):
        assert isinstance(queue, protocol)


async def test_put_lease_ack_round_trip_keeps_body_and_ids(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A put event comes back from lease with its exact body, its ids, zero attempts and a lease token."""
    body = '{"eventType":"call.answered","note":"héllo"}'.encode()
    [result] = await queue.put([event("e1", "a", body=body)])
    assert result.created == ("a",)
    [d] = await queue.lease(ALL, limit=10, lease_s=30)
    assert (d.event_id, d.target, d.body, d.attempts) == ("e1", "a", body, 0)
    assert d.delivery_id == delivery_id_for("e1", "a")
    assert isinstance(d.key, str)
    assert d.lease_token
    assert d.lease_until == pytest.approx(T0 + 30)
    await queue.ack(d, status=200)
    stats = await queue.stats()
    assert (stats.pending, stats.leased, stats.delivered, stats.dead) == (0, 0, 1, 0)
    clock.now += 100
    assert await queue.lease(ALL, limit=10, lease_s=30) == []


async def test_put_is_idempotent_on_event_id_and_target(queue: DeliveryQueue) -> None:
    """The same event id twice yields one set of deliveries; a new target on the repeat is added alone."""
    first = await queue.put([event("e1", "a", "b")])
    again = await queue.put([event("e1", "a", "b"), event("e1", "a", "b", "c")])
    assert first[0].created == ("a", "b")
    assert again[0].duplicate
    assert again[1].created == ("c",)
    leased = await queue.lease(ALL, limit=100, lease_s=30)
    assert sorted(d.target for d in leased) == ["a", "b", "c"]


async def test_event_without_targets_is_not_stored(queue: DeliveryQueue) -> None:
    """An event that matched nothing creates no delivery."""
    [result] = await queue.put([event("e1")])
    assert result.created == ()
    assert (await queue.stats()).pending == 0


async def test_invalid_priority_is_refused(queue: DeliveryQueue) -> None:
    """Priorities are 0-9."""
    with pytest.raises(ValueError, match="priority"):
        await queue.put([event("e1", "a", priority=10)])


async def test_lower_priority_number_goes_first_and_fifo_within(queue: DeliveryQueue, clock: ManualClock) -> None:
    """Priority 1 is leased before priority 5; within a priority, in order of acceptance."""
    await queue.put([event("low1", "a", priority=5, at=T0)])
    await queue.put([event("high1", "a", priority=1, at=T0 + 1)])
    await queue.put([event("high2", "a", priority=1, at=T0 + 2)])
    await queue.put([event("low2", "a", priority=5, at=T0 + 3)])
    clock.now = T0 + 10
    order = []
    for _ in range(4):
        [d] = await queue.lease(ALL, limit=1, lease_s=30)
        order.append(d.event_id)
    assert order == ["high1", "high2", "low1", "low2"]


async def test_sustained_high_priority_load_does_not_starve_priority_9(queue: DeliveryQueue) -> None:
    """Weighted fairness: under a flood of priority 0, priority 9 still gets about 1 slot in 512."""
    await queue.put([event(f"p0-{i}", "a", priority=0) for i in range(3000)])
    await queue.put([event(f"p9-{i}", "a", priority=9) for i in range(50)])
    leased = []
    for _ in range(40):
        leased += await queue.lease(ALL, limit=50, lease_s=30)
    p9 = [d for d in leased if d.priority == 9]
    assert len(leased) == 2000
    assert 2 <= len(p9) <= 6  # 2000 / 513 ~ 4: served, but rarely
    assert leased[0].priority == 0


async def test_per_target_wants_prevent_head_of_line_blocking(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A target at its cap is skipped without blocking another target's later work."""
    await queue.put([event(f"a{i}", "a", at=T0) for i in range(100)])
    await queue.put([event("b0", "b", at=T0 + 1)])
    clock.now = T0 + 2
    leased = await queue.lease({"a": 2, "b": 5}, limit=50, lease_s=30)
    assert sorted(d.target for d in leased) == ["a", "a", "b"]
    assert await queue.lease({"a": 0}, limit=50, lease_s=30) == []


async def test_a_lease_over_many_targets_takes_the_oldest_within_caps_and_the_rest_follow(
    queue: DeliveryQueue, clock: ManualClock
) -> None:
    """Work of one priority for many targets: each lease takes the oldest ready deliveries across targets,
    each target within its cap (a target at its cap does not hold back the others), and the leases that
    follow take the rest, none twice and none left behind."""
    targets = [f"t{i}" for i in range(12)]
    for n in range(5):
        await queue.put([event(f"{t}-{n}", t, at=T0 + n + i / 100) for i, t in enumerate(targets)])
    clock.now = T0 + 10
    wants = dict.fromkeys(targets, 3) | {"t0": 1}
    first = await queue.lease(wants, limit=20, lease_s=30)
    # Oldest first: every target's first event, then the second events of all but t0 (at its cap of 1),
    # until the limit of 20.
    assert [d.event_id for d in first] == [f"{t}-0" for t in targets] + [f"{t}-1" for t in targets[1:9]]
    rest = []
    for _ in range(30):
        rest += await queue.lease(dict.fromkeys(targets, 3), limit=20, lease_s=30)
    assert sorted(d.event_id for d in first + rest) == sorted(f"{t}-{n}" for t in targets for n in range(5))


async def test_lease_returns_the_whole_limit_without_a_hidden_cut(queue: DeliveryQueue) -> None:
    """Asked for 1,200, a lease hands out 1,200 when that many are ready."""
    await queue.put([event(f"e{i}", "a") for i in range(1_300)])
    leased = await queue.lease({"a": 5_000}, limit=1_200, lease_s=30)
    assert len(leased) == 1_200
    assert len({d.key for d in leased}) == 1_200


async def test_lease_expires_and_the_delivery_is_leased_again(queue: DeliveryQueue, clock: ManualClock) -> None:
    """Work leased by a process that died is delivered again once its lease ends, under a new token."""
    await queue.put([event("e1", "a")])
    [first] = await queue.lease(ALL, limit=10, lease_s=30)
    clock.now = T0 + 29
    assert await queue.lease(ALL, limit=10, lease_s=30) == []
    clock.now = T0 + 30
    await queue.reclaim()
    [again] = await queue.lease(ALL, limit=10, lease_s=30)
    assert again.delivery_id == first.delivery_id
    assert again.lease_token != first.lease_token
    assert again.attempts == 0  # a lost lease does not spend a retry


async def test_a_late_ack_from_an_expired_lease_changes_nothing(make_queue: QueueFactory, clock: ManualClock) -> None:
    """Only the current lease completes a delivery: the old holder's ack, retry, dead letter, release and
    renewal are ignored, and the new holder's ack counts."""
    one = await make_queue(owner="one")
    two = await make_queue(owner="two")
    await one.put([event("e1", "a")])
    [stale] = await one.lease(ALL, limit=1, lease_s=1)
    clock.now = T0 + 2
    await two.reclaim()
    [fresh] = await two.lease(ALL, limit=1, lease_s=30)
    assert fresh.key == stale.key
    await one.ack(stale, status=200)
    await one.reschedule(stale, delay_s=100, last_status=500, last_error=None)
    await one.dead_letter(stale, reason="permanent", last_status=400, last_error=None)
    await one.release([stale])
    assert await one.renew([stale], lease_s=30) == []
    stats = await two.stats()
    assert (stats.leased, stats.delivered, stats.dead, stats.pending) == (1, 0, 0, 0)
    await two.ack(fresh, status=200)
    stats = await two.stats()
    assert (stats.leased, stats.delivered) == (0, 1)


async def test_renew_extends_a_current_lease(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A renewed lease lasts lease_s from the renewal, so nobody takes over an attempt still in flight."""
    await queue.put([event("e1", "a")])
    [d] = await queue.lease(ALL, limit=1, lease_s=10)
    clock.now = T0 + 8
    [renewed] = await queue.renew([d], lease_s=10)
    assert renewed.lease_until == pytest.approx(T0 + 18)
    clock.now = T0 + 12
    assert await queue.reclaim() == 0
    assert await queue.lease(ALL, limit=1, lease_s=10) == []
    await queue.ack(renewed, status=200)
    assert (await queue.stats()).delivered == 1


async def test_restart_reclaims_previous_incarnations_leases_at_once(make_queue: QueueFactory) -> None:
    """A restarted router takes back its dead predecessor's leases without waiting for them to expire."""
    old = await make_queue(owner="r1", incarnation="old")
    await old.put([event("e1", "a"), event("e2", "a")])
    assert len(await old.lease(ALL, limit=10, lease_s=30)) == 2
    other = await make_queue(owner="other", incarnation="x")
    await other.put([event("e3", "a")])
    assert len(await other.lease(ALL, limit=10, lease_s=30)) == 1
    new = await make_queue(owner="r1", incarnation="new")
    assert await new.reclaim() == 2
    leased = await new.lease(ALL, limit=10, lease_s=30)
    assert sorted(d.event_id for d in leased) == ["e1", "e2"]  # another owner's lease is left to expire


async def test_reschedule_spends_an_attempt_and_waits_for_the_delay(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A retry is a row with next_attempt_at: not leasable before it, leasable after, attempts counted."""
    await queue.put([event("e1", "a")])
    [d] = await queue.lease(ALL, limit=10, lease_s=30)
    await queue.reschedule(d, delay_s=5, last_status=503, last_error=None)
    clock.now = T0 + 4.9
    assert await queue.lease(ALL, limit=10, lease_s=30) == []
    clock.now = T0 + 5
    [again] = await queue.lease(ALL, limit=10, lease_s=30)
    assert again.attempts == 1


async def test_release_returns_the_lease_without_spending_an_attempt(queue: DeliveryQueue) -> None:
    """Released work is leasable at once with the same attempt count."""
    await queue.put([event("e1", "a")])
    leased = await queue.lease(ALL, limit=10, lease_s=30)
    await queue.release(leased)
    [again] = await queue.lease(ALL, limit=10, lease_s=30)
    assert again.attempts == 0


async def test_dead_letters_keep_reason_status_attempts_and_replay(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A dead letter records why; replay makes it pending again with a fresh retry budget."""
    await queue.put([event("e1", "a"), event("e2", "b")])
    leased = await queue.lease(ALL, limit=10, lease_s=30)
    clock.now = T0 + 1
    for d in leased:
        await queue.dead_letter(d, reason="permanent", last_status=400, last_error="bad request")
    letters = await queue.dead_letters()
    assert {(x.event_id, x.reason, x.last_status, x.last_error, x.attempts, x.dead_at) for x in letters} == {
        ("e1", "permanent", 400, "bad request", 1, T0 + 1),
        ("e2", "permanent", 400, "bad request", 1, T0 + 1),
    }
    assert [x.target for x in await queue.dead_letters(target="b")] == ["b"]
    assert len(await queue.dead_letters(limit=1)) == 1
    clock.now = T0 + 2
    assert await queue.replay(delivery_ids=[delivery_id_for("e1", "a")]) == 1
    [d] = await queue.lease(ALL, limit=10, lease_s=30)
    assert (d.event_id, d.attempts) == ("e1", 0)
    assert await queue.replay(target="b") == 1
    assert await queue.replay() == 0
    assert (await queue.stats()).dead == 0


async def test_purge_deletes_dead_letters_only(queue: DeliveryQueue) -> None:
    """Purge removes the selected dead letters for good and leaves pending work alone."""
    await queue.put([event("e1", "a"), event("e2", "b"), event("e3", "c")])
    leased = await queue.lease({"a": 1, "b": 1}, limit=10, lease_s=30)
    for d in leased:
        await queue.dead_letter(d, reason="permanent", last_status=400, last_error=None)
    assert await queue.purge(delivery_ids=[delivery_id_for("e1", "a")]) == 1
    assert await queue.purge(target="b") == 1
    stats = await queue.stats()
    assert (stats.dead, stats.pending) == (0, 1)


async def test_expire_dead_letters_what_waited_too_long(queue: DeliveryQueue, clock: ManualClock) -> None:
    """Pending deliveries older than the maximum age become dead letters with reason expired."""
    await queue.put([event("old", "a", at=T0), event("young", "a", at=T0 + 3600)])
    clock.now = T0 + 86_401
    expired = await queue.expire(max_age_s=86_400)
    assert [(x.event_id, x.reason, x.attempts) for x in expired] == [("old", "expired", 0)]
    [d] = await queue.lease(ALL, limit=10, lease_s=30)
    assert d.event_id == "young"


async def test_a_paused_targets_work_does_not_expire(queue: DeliveryQueue, clock: ManualClock) -> None:
    """Pending deliveries of a target disabled as paused stay pending past the maximum age; a target
    disabled by a 410 (gone) still expires, as before."""
    await queue.put([event("old", "a", "b", "c", at=T0)])
    await queue.disable_target("a", reason="paused")
    await queue.disable_target("b", reason="gone")
    clock.now = T0 + 86_401
    expired = await queue.expire(max_age_s=86_400)
    assert sorted(x.target for x in expired) == ["b", "c"]
    assert (await queue.stats()).pending_by_target == {"a": 1}


async def test_time_spent_paused_does_not_count_toward_the_maximum_age(
    queue: DeliveryQueue, clock: ManualClock
) -> None:
    """After a resume, a delivery's age is its time since acceptance less the time it waited paused: one
    accepted before a long pause and one accepted during it are not expired at the resume, and expire once
    their unpaused age passes the maximum. Paused twice in a row, the pause runs from the first time."""
    await queue.put([event("before", "a", at=T0)])
    clock.now = T0 + 10
    await queue.disable_target("a", reason="paused")
    clock.now = T0 + 200
    await queue.put([event("during", "a", at=T0 + 200)])
    clock.now = T0 + 300
    await queue.disable_target("a", reason="paused")  # paused again: still since T0 + 10
    clock.now = T0 + 500  # paused 490 s: "before" is 10 s old, "during" 0 s
    assert await queue.enable_target("a")
    assert await queue.expire(max_age_s=100) == []
    clock.now = T0 + 595  # "before": 105 s of unpaused age; "during": 95 s
    assert [x.event_id for x in await queue.expire(max_age_s=100)] == ["before"]
    clock.now = T0 + 601
    assert [x.event_id for x in await queue.expire(max_age_s=100)] == ["during"]


async def test_dead_letter_target_takes_a_removed_targets_pending_work_at_once(
    queue: DeliveryQueue, clock: ManualClock
) -> None:
    """Every pending delivery of one target (retries included) becomes a target_removed dead letter now;
    its leased work, other targets' work and finished work stay; a replay brings it back."""
    await queue.put([event("e1", "a", "b"), event("e2", "a"), event("e3", "a", at=T0 + 5), event("e4", "a")])
    leased = await queue.lease({"a": 3}, limit=3, lease_s=30)
    by_event = {d.event_id: d for d in leased}
    await queue.ack(by_event["e1"], status=200)
    await queue.reschedule(by_event["e2"], delay_s=60, last_status=503, last_error=None)  # a retry, pending
    held = by_event["e3"] if "e3" in by_event else by_event["e4"]
    clock.now = T0 + 10
    letters = await queue.dead_letter_target("a", reason="target_removed")
    pending_events = {"e2", "e3", "e4"} - {held.event_id}
    assert sorted(x.event_id for x in letters) == sorted(pending_events)
    assert {(x.target, x.reason) for x in letters} == {("a", "target_removed")}
    assert {x.event_id: x.last_status for x in letters}["e2"] == 503
    assert await queue.dead_letter_target("a", reason="target_removed") == []  # nothing left to take
    stats = await queue.stats()
    assert (stats.pending, stats.leased, stats.delivered, stats.dead) == (1, 1, 1, 2)
    [other] = await queue.lease({"b": 10}, limit=10, lease_s=30)
    assert (other.event_id, other.target) == ("e1", "b")
    assert await queue.replay(target="a") == 2
    again = await queue.lease({"a": 10}, limit=10, lease_s=30)
    assert sorted(d.event_id for d in again) == sorted(pending_events)


async def test_prune_deletes_delivered_rows_after_retention_only(queue: DeliveryQueue, clock: ManualClock) -> None:
    """Delivered rows older than the retention go; pending and dead letters stay; the pruned id is forgotten."""
    await queue.put([event("done", "a"), event("dead", "b"), event("waiting", "c", at=T0 + 10**6)])
    leased = await queue.lease({"a": 1, "b": 1}, limit=10, lease_s=30)
    for d in leased:
        if d.target == "a":
            await queue.ack(d)
        else:
            await queue.dead_letter(d, reason="permanent", last_status=404, last_error=None)
    clock.now = T0 + 10
    assert await queue.prune(retention_s=60) == 0
    clock.now = T0 + 61
    assert await queue.prune(retention_s=60) == 1
    stats = await queue.stats()
    assert (stats.pending, stats.delivered, stats.dead) == (1, 0, 1)
    # The pruned event's id is forgotten: dedup holds for the retention period.
    [again] = await queue.put([event("done", "a")])
    assert again.created == ("a",)


async def test_stats_count_states_and_pending_by_target(queue: DeliveryQueue) -> None:
    """Stats give each state's count, pending work per target and the oldest pending acceptance time."""
    await queue.put([event("e1", "a", at=T0 - 5), event("e2", "a", "b")])
    [d] = await queue.lease({"b": 1}, limit=1, lease_s=30)
    stats = await queue.stats()
    assert (stats.pending, stats.leased) == (2, 1)
    assert dict(stats.pending_by_target) == {"a": 2}
    assert stats.oldest_pending_at == T0 - 5
    assert d.target == "b"


async def test_concurrent_puts_all_land(queue: DeliveryQueue) -> None:
    """Many concurrent puts all succeed and are all leasable afterwards."""
    results = await asyncio.gather(*(queue.put([event(f"e{i}", "a", "b")]) for i in range(300)))
    assert all(r[0].created == ("a", "b") for r in results)
    assert (await queue.stats()).pending == 600


async def test_a_large_batch_with_repeated_ids_keeps_each_body_with_its_event(queue: DeliveryQueue) -> None:
    """A large batch: each delivery carries its own event's body, once per id, repeats add only new targets."""
    await queue.put([event("old", "a")])
    batch = [event(f"e{i}", "a", "b") for i in range(1_100)]
    batch += [event("e7", "a", "b", "c"), event("old", "a", "b"), event("none")]
    results = await queue.put(batch)
    created = {r.event_id: r.created for r in results[-3:]}
    assert created == {"e7": ("c",), "old": ("b",), "none": ()}
    assert all(r.created == ("a", "b") for r in results[:1_100])
    leased = await queue.lease({"a": 5_000, "b": 5_000, "c": 5_000}, limit=5_000, lease_s=30)
    assert len(leased) == 2 * 1_100 + 3
    for d in leased:
        assert d.body == f'{{"id":"{d.event_id}"}}'.encode()
        assert d.delivery_id == delivery_id_for(d.event_id, d.target)


async def test_acks_all_land_even_when_a_caller_is_cancelled(queue: DeliveryQueue) -> None:
    """Concurrent acks are grouped; a cancelled caller neither fails nor undoes the others."""
    await queue.put([event(f"e{i}", "a") for i in range(50)])
    leased = await queue.lease(ALL, limit=50, lease_s=30)
    tasks = [asyncio.create_task(queue.ack(d, status=200)) for d in leased]
    await asyncio.sleep(0)  # every ack has joined the group
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [None] * 49
    stats = await queue.stats()
    assert (stats.delivered + stats.leased, stats.pending) == (50, 0)
    assert stats.delivered >= 49


async def test_disabled_targets_are_shared_persist_and_are_not_leased(make_queue: QueueFactory) -> None:
    """A target disabled through one queue is not leased through another, and stays so until enabled."""
    one = await make_queue(owner="one")
    await one.put([event("e1", "a", "b")])
    await one.disable_target("a", reason="gone")
    two = await make_queue(owner="two")
    assert await two.disabled_targets() == {"a": "gone"}
    assert [d.target for d in await two.lease(ALL, limit=10, lease_s=30)] == ["b"]
    assert await two.enable_target("a") is True
    assert await two.enable_target("a") is False
    assert await one.disabled_targets() == {}
    assert [d.target for d in await one.lease(ALL, limit=10, lease_s=30)] == ["a"]


async def test_probe_circuit_lets_the_probe_through_now_for_every_queue(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    """An open shared circuit probed through one queue hands its probe out through another at once, keeping
    its open period; a target without a shared circuit has nothing to probe."""
    one = await make_queue(owner="one")
    await one.put([event("e1", "a"), event("e2", "a")])
    await one.open_circuit("a", open_for_s=60)
    two = await make_queue(owner="two")
    assert await two.lease(ALL, limit=10, lease_s=30) == []
    assert await one.probe_circuit("a") is True
    assert await one.probe_circuit("b") is False
    [probe] = await two.lease(ALL, limit=10, lease_s=30)
    assert probe.probe
    assert (await two.circuits())["a"].open_s == pytest.approx(60)
    assert await one.lease(ALL, limit=10, lease_s=30) == []  # one probe at a time


async def test_max_in_flight_holds_across_queues_sharing_storage(make_queue: QueueFactory) -> None:
    """maxInFlight counts leases held through every queue on the storage, not one process's."""
    one = await make_queue(owner="one")
    await one.put([event(f"e{i}", "a") for i in range(10)])
    two = await make_queue(owner="two")
    limits = {"a": TargetLimits(max_in_flight=4)}
    first = await one.lease(ALL, limit=3, lease_s=30, limits=limits)
    second = await two.lease(ALL, limit=10, lease_s=30, limits=limits)
    assert (len(first), len(second)) == (3, 1)
    assert await one.lease(ALL, limit=10, lease_s=30, limits=limits) == []
    await two.ack(second[0])
    assert len(await one.lease(ALL, limit=10, lease_s=30, limits=limits)) == 1


async def test_rate_limit_hands_out_evenly_spaced_send_slots_across_queues(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    """rateLimitPerSecond: leases through two queues draw from one sequence of send slots, spaced as the
    scheduler says (1/rate plus the jitter margin)."""
    one = await make_queue(owner="one")
    await one.put([event(f"e{i}", "a") for i in range(200)])
    two = await make_queue(owner="two")
    limits = {"a": TargetLimits(rate_per_s=50)}
    first = await one.lease(ALL, limit=200, lease_s=30, limits=limits)
    second = await two.lease(ALL, limit=200, lease_s=30, limits=limits)
    slots = sorted(d.not_before for d in first + second)
    spacing = rate_spacing(50)
    assert slots[0] == pytest.approx(T0 + RATE_LEAD_S)
    assert len(slots) == len(set(slots)) > 40
    assert all(b - a == pytest.approx(spacing, abs=1e-6) for a, b in itertools.pairwise(slots))
    assert slots[-1] <= T0 + 1.0 + 1e-9  # no more than a second's worth handed out ahead
    clock.now = T0 + 2
    later = await one.lease(ALL, limit=200, lease_s=30, limits=limits)
    assert min(d.not_before for d in later) == pytest.approx(T0 + 2 + RATE_LEAD_S)


async def test_closed_queue_refuses_work(make_queue: QueueFactory) -> None:
    """Using a queue after close raises QueueClosedError rather than hanging."""
    q = await make_queue()
    await q.close()
    with pytest.raises(QueueClosedError):
        await q.put([event("e1", "a")])


async def test_a_shared_circuit_holds_deliveries_then_lets_one_probe_through_until_closed(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    """A circuit opened through one queue holds the target's deliveries for every queue; half-open, one
    delivery at a time is leased across them; closed, all flow again."""
    one = await make_queue(owner="one")
    await one.put([event(f"e{i}", "a") for i in range(5)] + [event("b0", "b")])
    await one.open_circuit("a", open_for_s=10)
    two = await make_queue(owner="two")
    circuits = await two.circuits()
    assert circuits["a"].open_until == pytest.approx(T0 + 10)
    assert circuits["a"].open_s == 10
    assert [d.target for d in await two.lease(ALL, limit=10, lease_s=30)] == ["b"]
    clock.now = T0 + 10
    [probe] = await two.lease(ALL, limit=10, lease_s=30)
    assert (probe.target, probe.probe) == ("a", True)
    assert await one.lease(ALL, limit=10, lease_s=30) == []  # the probe is in flight
    await two.ack(probe)
    await two.close_circuit("a")
    assert await one.circuits() == {}
    rest = await one.lease(ALL, limit=10, lease_s=30)
    assert [d.probe for d in rest] == [False] * 4


# -- the event archive (EventArchive, beside each backend) ------------------------------------------


def attempt_of(d: Delivery, at: float, *, status: int | None, outcome: str, error: str | None = None) -> AttemptRecord:
    """The attempt record the dispatcher's recorder makes of one attempt of ``d``."""
    category = None if outcome == "success" else "status_5xx" if status else "connect"
    return AttemptRecord(d.key, d.attempts + 1, at, outcome, status, 0.012, category, error)


async def test_archive_satisfies_its_protocol(queue: DeliveryQueue) -> None:
    """Each backend has an archive beside it that is an EventArchive."""
    assert isinstance(archive_for(queue), EventArchive)


async def test_history_lists_every_attempt_of_each_delivery(queue: DeliveryQueue, clock: ManualClock) -> None:
    """A failed attempt, its retry and a success are each recorded with time, status, latency and category."""
    archive = archive_for(queue)
    await queue.put([event("e1", "a", "b")])
    leased = {d.target: d for d in await queue.lease(ALL, limit=10, lease_s=30)}
    archive.record_attempt(attempt_of(leased["a"], T0 + 1, status=503, outcome="retry"))
    await queue.reschedule(leased["a"], delay_s=1, last_status=503, last_error=None)
    archive.record_attempt(attempt_of(leased["b"], T0 + 1, status=None, outcome="error", error="connection refused"))
    await queue.dead_letter(leased["b"], reason="permanent", last_status=None, last_error="connection refused")
    clock.now += 5
    [again] = await queue.lease(ALL, limit=10, lease_s=30)
    archive.record_attempt(attempt_of(again, T0 + 5, status=200, outcome="success"))
    await queue.ack(again, status=200)
    await archive.flush()
    history = await archive.history("e1")
    assert history is not None
    assert (history.event_id, history.body, history.accepted_at, history.replay_of) == ("e1", b'{"id":"e1"}', T0, None)
    by_target = {d.target: d for d in history.deliveries}
    a, b = by_target["a"], by_target["b"]
    assert (a.state, a.attempts, a.delivery_id, a.replay_id) == ("delivered", 2, delivery_id_for("e1", "a"), None)
    assert [(x.attempt, x.status, x.outcome, x.category, x.at) for x in a.history] == [
        (1, 503, "retry", "status_5xx", T0 + 1),
        (2, 200, "success", None, T0 + 5),
    ]
    assert a.history[0].latency_s == pytest.approx(0.012)
    assert (b.state, b.reason, b.last_error) == ("dead", "permanent", "connection refused")
    assert [(x.outcome, x.category, x.error) for x in b.history] == [("error", "connect", "connection refused")]
    assert await archive.history("nope") is None


async def test_archive_pages_through_a_window_in_acceptance_order(queue: DeliveryQueue) -> None:
    """archived() returns [since, until) in (accepted_at, seq) order, page by page, equal times included."""
    archive = archive_for(queue)
    await queue.put([event(f"e{i}", "a", at=T0 + i // 2) for i in range(10)])  # two events per second
    assert await archive.count_archived(since=T0 + 1, until=T0 + 4) == 6
    seen: list[str] = []
    after = None
    while page := await archive.archived(since=T0 + 1, until=T0 + 4, after=after, limit=4):
        seen += [e.event_id for e in page]
        after = (page[-1].accepted_at, page[-1].seq)
    assert seen == ["e2", "e3", "e4", "e5", "e6", "e7"]
    [first] = await archive.archived(since=T0, until=T0 + 1, limit=1)
    assert (first.event_id, first.body, first.priority) == ("e0", b'{"id":"e0"}', 5)


async def test_events_that_matched_nothing_are_kept_for_the_archive(make_queue: QueueFactory) -> None:
    """With keep_unmatched, an event without targets is stored (no delivery) and archived."""
    queue = await make_queue(keep_unmatched=True)
    archive = archive_for(queue)
    [result] = await queue.put([event("lonely")])
    assert result.created == ()
    assert (await queue.stats()).pending == 0
    [kept] = await archive.archived(since=T0, until=T0 + 1)
    assert kept.event_id == "lonely"
    history = await archive.history("lonely")
    assert history is not None
    assert history.deliveries == ()
    # A later put of the same id that matches a target gets its delivery.
    [again] = await queue.put([event("lonely", "a")])
    assert again.created == ("a",)


async def test_replays_are_marked_listed_with_the_original_and_not_archived_again(
    queue: DeliveryQueue, clock: ManualClock
) -> None:
    """A replay's event is a replay of its original: its deliveries show in the original's history,
    marked with the replay id, and archived() never returns it."""
    archive = archive_for(queue)
    await queue.put([event("e1", "a")])
    replay_id = "rpl_0123456789abcdef"
    copy = replay_event_id(replay_id, "e1")
    await queue.put([event(copy, "a", "b", at=T0 + 1)])
    await archive.mark_replays([(copy, "e1")])
    await archive.mark_replays([(copy, "e1")])  # idempotent
    assert [e.event_id for e in await archive.archived(since=T0, until=T0 + 10)] == ["e1"]
    assert await archive.count_archived(since=T0, until=T0 + 10) == 1
    history = await archive.history("e1")
    assert history is not None
    rows = sorted((d.target, d.replay_id or "", d.delivery_id) for d in history.deliveries)
    assert rows == [
        ("a", "", delivery_id_for("e1", "a")),
        ("a", replay_id, delivery_id_for(copy, "a")),
        ("b", replay_id, delivery_id_for(copy, "b")),
    ]
    own = await archive.history(copy)
    assert own is not None
    assert own.replay_of == "e1"


async def test_pruning_the_archive_keeps_what_is_inside_the_period(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    """prune_archive drops old events without deliveries, the attempts of deliveries the queue pruned, and
    finished jobs; it keeps recent events, running jobs, and events that still have deliveries (with their
    attempts)."""
    queue = await make_queue(keep_unmatched=True)
    archive = archive_for(queue)
    await queue.put([event("old-lonely", at=T0), event("old-pending", "a", at=T0), event("old-done", "b", at=T0)])
    await queue.put([event("new-lonely", at=T0 + 90)])
    leased = {d.target: d for d in await queue.lease(ALL, limit=2, lease_s=30)}
    for d in leased.values():
        archive.record_attempt(attempt_of(d, T0 + 1, status=503, outcome="retry"))
    await queue.reschedule(leased["a"], delay_s=1, last_status=503, last_error=None)
    await queue.ack(leased["b"], status=200)
    await archive.flush()
    clock.now = T0 + 100
    assert await queue.prune(retention_s=50) == 1  # old-done's delivery, and the event with it
    for job_id, state, finished in (("rpl_old", ReplayState.DONE, T0), ("rpl_run", ReplayState.RUNNING, None)):
        await archive.save_replay(replay_job(job_id, state=state, finished_at=finished))
    assert await archive.prune_archive(keep_s=50) == 3  # old-lonely, old-done's attempt, rpl_old
    assert await archive.prune_archive(keep_s=50) == 0
    assert [e.event_id for e in await archive.archived(since=0, until=T0 + 1000)] == ["old-pending", "new-lonely"]
    history = await archive.history("old-pending")
    assert history is not None
    assert [x.at for x in history.deliveries[0].history] == [T0 + 1]
    assert [job.replay_id for job in await archive.replay_jobs()] == ["rpl_run"]


async def test_an_attempt_with_an_error_text_round_trips(queue: DeliveryQueue) -> None:
    """Error texts with quotes, newlines and non-ASCII come back as written; the key names the delivery."""
    archive = archive_for(queue)
    await queue.put([event("e1", "a")])
    [d] = await queue.lease(ALL, limit=1, lease_s=30)
    text = 'TLS: certificate "x"\nverify failed — ünïcode'
    archive.record_attempt(attempt_of(d, T0 + 0.25, status=None, outcome="error", error=text))
    await queue.dead_letter(d, reason="permanent", last_status=None, last_error=text)
    await archive.flush()
    history = await archive.history("e1")
    assert history is not None
    [attempt] = history.deliveries[0].history
    assert attempt == AttemptRecord(d.key, 1, T0 + 0.25, "error", None, 0.012, "connect", text)


def replay_job(replay_id: str, *, state: ReplayState = ReplayState.RUNNING, **changes: object) -> ReplayJob:
    job = ReplayJob(
        replay_id=replay_id,
        since=T0,
        until=T0 + 60,
        target=None,
        pattern=None,
        rate_per_s=100,
        state=state,
        created_at=T0,
    )
    return replace(job, **changes)  # type: ignore[arg-type]


async def test_replay_jobs_are_saved_listed_and_claimed_by_one_router(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    """A job round-trips; a running job is claimed by its own runner or, once its heartbeat is stale, by another."""
    archive = archive_for(await make_queue())
    job = replay_job("rpl_a", target="a", pattern='{"source":["x"]}', runner="one", heartbeat_at=T0)
    await archive.save_replay(job)
    await archive.save_replay(replay_job("rpl_b", created_at=T0 + 1, state=ReplayState.DONE, finished_at=T0 + 2))
    assert await archive.replay_job("rpl_a") == job
    assert await archive.replay_job("rpl_none") is None
    assert [j.replay_id for j in await archive.replay_jobs()] == ["rpl_b", "rpl_a"]
    progressed = replace(job, scanned=10, replayed=7, deliveries=9, cursor_at=T0 + 3, cursor_seq=12, total=20)
    await archive.save_replay(progressed)
    assert await archive.replay_job("rpl_a") == progressed
    assert await archive.claim_replays(runner="two", stale_before=T0 - 1) == []  # one's heartbeat is fresh
    [mine] = await archive.claim_replays(runner="one", stale_before=T0 - 1)
    assert (mine.replay_id, mine.runner, mine.scanned) == ("rpl_a", "one", 10)
    clock.now = T0 + 100
    [taken] = await archive.claim_replays(runner="two", stale_before=T0 + 50)
    assert (taken.replay_id, taken.runner) == ("rpl_a", "two")
