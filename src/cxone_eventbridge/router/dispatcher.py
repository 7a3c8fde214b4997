"""The dispatcher: lease ready deliveries, send them, and record what happened.

Attempts in flight stay within two bounds: ``max_in_flight`` overall and ``per_target_in_flight`` per
target (fewer when the target's circuit is open or half-open). Each delivery runs as a task that sends
one attempt and then acks it, reschedules it (a row with ``next_attempt_at``; nothing sleeps in process)
or dead-letters it. ``_attempt`` is the one place where any failure becomes a recorded attempt.

This module is the lease loop and the lifecycle (slots, prefetch, housekeeping, shutdown); what follows
from an attempt's outcome (publishing it, circuits, ack / retry / dead letter) is
:mod:`.dispatch_outcome`'s, and what is known per target (settings, limits, disabled, both circuits)
is :mod:`.dispatch_targets`'.

Keeping the slots busy: a lease and an ack each wait for a durable commit (about a millisecond, more
behind a busy event loop), so a slot that waited for them would sit idle for a good part of each
delivery. Measured with 64 slots: only about 24 were sending on average. Two things keep them sending:

- A slot is free as soon as its HTTP attempt ends; recording the outcome (the ack) does not hold it.
- The lease loop leases up to ``prefetch`` deliveries ahead of free slots (only for targets whose
  circuit is closed), so a freed slot is refilled at once from memory, without waiting for a lease.
  Ahead-leased deliveries of a target whose circuit opens, or that is disabled or removed, are released
  (no attempt spent); one whose lease ran out before a slot freed is dropped, and the queue offers it
  again. A newly ready delivery of a higher priority waits behind at most ``prefetch`` leased ones.

Limits held across routers: a target's ``maxInFlight`` and ``rateLimitPerSecond`` go with every lease
(the queue keeps them across every router sharing it); a rate-limited delivery comes with its send slot
(``not_before``) and waits for it among the leased-ahead ones, spending no attempt. Leases of attempts
still in flight are renewed, so a slow endpoint never lets another router take a delivery over; a dead
router's leases end and the queue offers its deliveries to the others. Disabled targets (410) are the
queue's: they are never leased, whichever router saw the 410, and this dispatcher refreshes its view of
them at each housekeeping round. So are circuits (see :mod:`.dispatch_targets`).

Shutdown: stop leasing, let in-flight deliveries finish until the deadline, then cancel the rest and
give their leases back (no attempt spent; the receiver may see such a delivery again, which
at-least-once allows and the constant ``webhook-id`` lets it detect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from cxone_eventbridge.exceptions import QueueError, QueueUnavailableError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.router.circuit import CircuitBreaker, CircuitState
from cxone_eventbridge.router.delivery import AttemptOutcome, AttemptResult, DeliveryClient
from cxone_eventbridge.router.dispatch_options import DispatcherOptions
from cxone_eventbridge.router.dispatch_outcome import AttemptOutcomes
from cxone_eventbridge.router.dispatch_targets import TargetBook
from cxone_eventbridge.router.queue import DeadLetter, DeadLetterReason, Delivery, DeliveryQueue
from cxone_eventbridge.router.queue.scheduler import slot_missed
from cxone_eventbridge.router.recurring_failure import RecurringFailure

__all__ = ["Dispatcher", "DispatcherOptions"]

log = logging.getLogger(__name__)


_MAX_BACKOFF_S = 5.0
GoneListener = Callable[[str], None]
DisabledListener = Callable[[set[str]], None]


class Dispatcher:
    """Moves deliveries from the queue to their targets until stopped."""

    def __init__(
        self,
        queue: DeliveryQueue,
        client: DeliveryClient,
        *,
        bus: ObserverBus,
        options: DispatcherOptions,
        clock: Callable[[], float] = time.time,
        on_gone: GoneListener | None = None,
        on_disabled: DisabledListener | None = None,
    ) -> None:
        self._queue = queue
        self._client = client
        self._options = options
        self._clock = clock
        self._on_disabled = on_disabled
        self._book = TargetBook(
            queue,
            bus=bus,
            policy=options.circuit,
            clock=clock,
            background=self._in_background,
            on_open=self._release_ready,
            on_close=self.notify,
            on_gone=on_gone,
        )
        self._outcomes = AttemptOutcomes(
            queue,
            self._book,
            bus=bus,
            retry_base_s=options.retry_base_s,
            retry_cap_s=options.retry_cap_s,
            max_retry_after_s=options.max_retry_after_s,
            max_event_age_s=options.max_event_age_s,
            wake_at=self._wake_at,
        )
        self._gone_seen: set[str] = set()  # the queue's disabled targets at the last housekeeping round
        self._in_flight: dict[str, tuple[Delivery, asyncio.Task[None]]] = {}  # sending or recording
        self._sending = 0
        self._per_target: dict[str, int] = {}  # attempts sending, per target
        self._ready: dict[str, deque[Delivery]] = {}  # leased ahead, waiting for a slot, per target
        self._ready_keys: set[str] = set()
        self._releases: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._next_wake_at: float | None = None
        self._last_housekeeping = float("-inf")
        self._last_prune = float("-inf")
        self._outage_failures = 0  # consecutive leases that found the queue unreachable
        # A queue that keeps failing (a full disk) is logged once per change, not at every poll; one
        # tracker per kind of work, since leasing may work while recording outcomes fails.
        self._lease_failure = RecurringFailure("leasing deliveries from the queue", log)
        self._record_failure = RecurringFailure("recording delivery outcomes in the queue", log)
        self._housekeeping_failure = RecurringFailure("queue housekeeping", log)

    # -- configuration -----------------------------------------------------------------------------

    def set_targets(self, targets: Mapping[str, IntegrationTarget]) -> None:
        """Replace the targets deliveries may go to (by name)."""
        for name in self._book.set_targets(targets):
            self._release_ready(name)
        self.notify()

    async def retire(self, name: str) -> list[DeadLetter]:
        """Dead-letter a removed target's pending deliveries at once (``target_removed``, replayable).

        Call after ``set_targets`` dropped it: its leased-ahead deliveries are given back first, so they are
        taken too; attempts in flight settle as ``target_removed`` when they would be retried.
        """
        if self._releases:
            await asyncio.wait(list(self._releases))
        letters = await self._queue.dead_letter_target(name, reason=DeadLetterReason.TARGET_REMOVED.value)
        self._outcomes.publish_dead_letters(letters, self._clock())
        return letters

    async def probe(self, name: str) -> bool:
        """Send the probe of ``name``'s open circuit now, rather than when its wait ends; False when its
        circuit is closed here and in the queue."""
        probed = await self._book.probe(name, self._clock())
        self.notify()
        return probed

    def set_disabled(self, names: set[str]) -> None:
        self._book.disabled = set(names)
        for name in names:
            self._release_ready(name)
        self.notify()

    @property
    def disabled(self) -> frozenset[str]:
        return frozenset(self._book.disabled)

    def circuit_states(self) -> dict[str, CircuitState]:
        return self._book.circuits.states()

    @property
    def storage_full(self) -> bool:
        """The queue's storage was full at the latest attempt to lease, record or tidy."""
        return any(f.storage_full for f in (self._lease_failure, self._record_failure, self._housekeeping_failure))

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def notify(self) -> None:
        """New work may be ready (an ingest, a freed slot): lease now rather than at the next poll."""
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is None:
            self._stopping = False
            self._queue.on_ready(self.notify)
            self._loop_task = asyncio.create_task(self._run(), name="cxeb-dispatcher")

    async def stop(self, deadline_s: float = 10.0) -> None:
        """Stop leasing; wait up to ``deadline_s`` for in-flight work, then cancel it and release its leases."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        for name in list(self._ready):
            self._release_ready(name)
        if self._releases:
            await asyncio.wait(list(self._releases))
        tasks = [task for _, task in self._in_flight.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(deadline_s, 0.0))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        leftovers = [delivery for delivery, _ in self._in_flight.values()]
        self._in_flight.clear()
        if leftovers:
            try:
                await self._queue.release(leftovers)
            except Exception:  # shutdown boundary: the leases expire anyway
                log.exception("could not release %d leases at shutdown; they will expire", len(leftovers))

    # -- the lease loop ----------------------------------------------------------------------------

    def _lease_wants(self) -> tuple[dict[str, int], int]:
        """Per target and overall, how many deliveries to lease now: free slots plus the prefetch."""
        options = self._options
        cap = options.per_target_in_flight
        ahead = min(options.prefetch, cap)
        limit = options.max_in_flight + options.prefetch - self._sending - len(self._ready_keys)
        capacity: dict[str, int] = {}
        if limit <= 0:
            return capacity, 0
        book = self._book
        for name in book.targets:
            if name in book.disabled:
                continue
            sending = self._per_target.get(name, 0)
            ready = len(self._ready.get(name, ()))
            breaker = book.circuits.get(name)
            if breaker.state is CircuitState.CLOSED:
                wanted = cap + ahead - sending - ready
                if sending + ready >= cap and wanted < ahead // 4:
                    # Every slot is busy or has a delivery waiting for it: top the prefetch up once a
                    # quarter of it is gone, not at each freed slot. A lease costs its round trips whatever
                    # it returns (one to four on PostgreSQL); leased at each freed slot, two in three leases
                    # took 1-7 deliveries (bench_delivery.py, PostgreSQL, one router). Three quarters stay
                    # leased ahead while it runs, so no slot waits for it (at half, some did: #18).
                    wanted = 0
            else:  # open or half-open: no prefetch, at most the probe
                wanted = breaker.allowance(cap - sending) - ready
            if wanted > 0:
                capacity[name] = wanted
        return capacity, min(limit, options.lease_batch)

    async def _run(self) -> None:
        options = self._options
        while not self._stopping:
            now = self._clock()
            if now - self._last_housekeeping >= options.housekeeping_interval_s:
                self._last_housekeeping = now
                await self._housekeeping(now)
            capacity, asked = self._lease_wants()
            leased: list[Delivery] = []
            if capacity and asked > 0:
                self._wake.clear()
                try:
                    leased = await self._queue.lease(
                        capacity, limit=asked, lease_s=options.lease_s, limits=self._book.limits
                    )
                except QueueUnavailableError as exc:
                    await self._queue_down(exc)
                    continue
                except QueueError as exc:  # the queue's own failure (a full disk): retried at the next poll
                    self._lease_failure.failed(exc)
                except Exception:  # dispatcher boundary: a failed lease is retried at the next poll
                    log.exception("leasing deliveries failed; retrying")
                else:
                    self._queue_up()
                    self._lease_failure.succeeded()
            for delivery in leased:
                if delivery.key not in self._in_flight and delivery.key not in self._ready_keys:
                    self._ready.setdefault(delivery.target, deque()).append(delivery)
                    self._ready_keys.add(delivery.key)
            if leased and self._stopping:
                break  # stop() releases what was just leased
            self._launch_ready()
            if self._stopping:
                break
            if leased and len(leased) >= asked:
                await asyncio.sleep(0)  # more is probably ready; let the tasks run first
                continue
            await self._idle()

    async def _queue_down(self, exc: QueueUnavailableError) -> None:
        """The queue's database cannot be reached: wait with exponential backoff (stop() ends the wait),
        saying so once per outage rather than at every poll."""
        if self._outage_failures == 0:
            log.warning("the queue cannot be reached (%s); retrying with backoff up to %.0f s", exc, _MAX_BACKOFF_S)
        delay = min(self._options.poll_interval_s * 2**self._outage_failures, _MAX_BACKOFF_S)
        self._outage_failures += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while not self._stopping:  # the wake event is also set by ingests, which fail meanwhile
                    self._wake.clear()
                    await self._wake.wait()

    def _queue_up(self) -> None:
        if self._outage_failures:
            log.warning("the queue answers again after %d failed attempts", self._outage_failures)
            self._outage_failures = 0

    async def _idle(self) -> None:
        timeout = self._options.poll_interval_s
        now = self._clock()
        wake_times = [t for t in (self._next_wake_at, self._book.circuits.next_change_at()) if t is not None]
        if wake_times:
            timeout = max(0.0, min(timeout, min(wake_times) - now))
            self._next_wake_at = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _launch_ready(self, first: str | None = None) -> None:
        """Start leased-ahead deliveries while slots are free (``first``'s own queue first)."""
        room = self._options.max_in_flight - self._sending
        if room <= 0 or not self._ready or self._stopping:
            return
        names = list(self._ready)  # a copy: the loop deletes emptied queues
        if first is not None and len(names) > 1 and first in self._ready:
            names = [first, *(name for name in names if name != first)]
        now = self._clock()
        cap = self._options.per_target_in_flight
        for name in names:
            ready = self._ready[name]
            breaker = self._book.circuits.get(name)
            allowed = min(room, breaker.allowance(cap - self._per_target.get(name, 0)))
            stale: list[Delivery] = []
            while ready and allowed > 0:
                delivery = ready[0]
                if delivery.not_before > now and delivery.lease_until > now:
                    self._wake_at(delivery.not_before)  # a rate-limited target's send slot is still ahead
                    break
                ready.popleft()
                self._ready_keys.discard(delivery.key)
                if delivery.lease_until <= now:
                    continue  # its lease ran out while it waited; the queue offers it again
                if slot_missed(delivery.not_before, now):
                    # Its send slot passed while this loop was busy: sent now, it would bunch up with the
                    # slots after it and break the target's rate. Give it back for a fresh slot.
                    stale.append(delivery)
                    continue
                self._launch(delivery)
                allowed -= 1
                room -= 1
            if stale:
                self._in_background(self._queue.release(stale))
            if not ready:
                del self._ready[name]
            if room <= 0:
                return

    def _launch(self, delivery: Delivery) -> None:
        if delivery.key in self._in_flight:
            return  # our own lease ran out while the attempt is still going; that attempt will settle it
        target = delivery.target
        self._per_target[target] = self._per_target.get(target, 0) + 1
        self._sending += 1
        breaker = self._book.circuits.get(target)
        breaker.started()
        task = asyncio.create_task(self._attempt(delivery, breaker))
        self._in_flight[delivery.key] = (delivery, task)

    def _release_ready(self, name: str) -> None:
        """Give back a target's leased-ahead deliveries (no attempt spent)."""
        ready = self._ready.pop(name, None)
        if not ready:
            return
        self._ready_keys.difference_update(delivery.key for delivery in ready)
        task = asyncio.create_task(self._release(list(ready)))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Write to the queue without holding up a delivery (awaited at stop)."""

        async def guarded() -> None:
            try:
                await work
            except Exception:  # dispatcher boundary: shared target state is best effort; leases still expire
                log.exception("could not record a target's state or give leases back; leases expire regardless")

        task = asyncio.create_task(guarded())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, deliveries: list[Delivery]) -> None:
        try:
            await self._queue.release(deliveries)
        except Exception:  # dispatcher boundary: unreleased leases expire and are offered again
            log.exception("could not release %d leased deliveries; their leases will expire", len(deliveries))

    async def _housekeeping(self, now: float) -> None:
        try:
            await self._renew(now)
            await self._queue.reclaim()  # a dead router's leases that ran out
            self._book.shared = await self._queue.circuits()
            disabled = set(await self._queue.disabled_targets())
            if self._on_disabled is not None and disabled != self._gone_seen:
                self._gone_seen = disabled
                self._on_disabled(disabled)
            self._outcomes.publish_dead_letters(await self._queue.expire(max_age_s=self._options.max_event_age_s), now)
            if now - self._last_prune >= self._options.prune_interval_s:
                self._last_prune = now
                await self._queue.prune(retention_s=self._options.retention_s)
        except QueueUnavailableError:
            pass  # the lease loop reports the outage once and backs off
        except QueueError as exc:  # the queue's own failure (a full disk): retried at the next interval
            self._housekeeping_failure.failed(exc)
        except Exception:  # dispatcher boundary: housekeeping is retried at the next interval
            log.exception("queue housekeeping failed; retrying later")
        else:
            self._housekeeping_failure.succeeded()

    async def _renew(self, now: float) -> None:
        """Extend the leases of attempts in flight that are past half their lease."""
        lease_s = self._options.lease_s
        due = [d for d, _ in self._in_flight.values() if d.lease_until - now < lease_s / 2]
        if not due:
            return
        for renewed in await self._queue.renew(due, lease_s=lease_s):
            entry = self._in_flight.get(renewed.key)
            if entry is not None:
                self._in_flight[renewed.key] = (renewed, entry[1])

    # -- one delivery ------------------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery, breaker: CircuitBreaker) -> None:
        name = delivery.target
        slot_held = True
        cancelled = False
        try:
            target = self._book.targets.get(name)
            if target is None:  # removed after this delivery was leased: its work goes with it
                breaker.cancelled()
                removed = AttemptResult(AttemptOutcome.REFUSED, None, 0.0, error="the target was removed")
                await self._outcomes.dead_letter(delivery, DeadLetterReason.TARGET_REMOVED, removed, self._clock())
                return
            if name in self._book.disabled:
                breaker.cancelled()
                await self._queue.release([delivery])
                return
            try:
                result = await self._client.send(target, delivery)
            except asyncio.CancelledError:
                breaker.cancelled()
                raise
            except Exception as exc:  # the dispatcher boundary: any failure is a recorded attempt
                log.exception(
                    "delivery %s to %s failed unexpectedly",
                    delivery.delivery_id,
                    name,
                    extra={"event_id": delivery.event_id, "delivery_id": delivery.delivery_id, "target": name},
                )
                result = AttemptResult(AttemptOutcome.ERROR, None, 0.0, error=f"{type(exc).__name__}: {exc}")
            now = self._clock()
            # Before the slot is reused: a failure that opens the circuit must stop the next send.
            self._outcomes.attempt_ended(delivery, result, now)
            self._free_slot(name)
            slot_held = False
            await self._outcomes.settle(delivery, target, result, now)
            self._record_failure.succeeded()
        except asyncio.CancelledError:
            cancelled = True  # shutdown: stop() finds the entry in _in_flight and releases the lease
            raise
        except QueueError as exc:  # the queue's own failure (a full disk): the lease expires, it is retried
            self._record_failure.failed(exc)
        except Exception:  # the dispatcher boundary: a failed record leaves the lease to expire
            log.exception(
                "recording delivery %s failed; its lease will expire and it will be retried",
                delivery.key,
                extra={"event_id": delivery.event_id, "delivery_id": delivery.delivery_id, "target": name},
            )
        finally:
            if slot_held:
                self._free_slot(name)
            if not cancelled:
                self._in_flight.pop(delivery.key, None)

    def _free_slot(self, target: str) -> None:
        self._per_target[target] = self._per_target.get(target, 1) - 1
        self._sending -= 1
        self._launch_ready(first=target)
        # The lease loop tops the prefetch up. Not only once it runs low: with a lease taking a commit
        # (several ms on a busy machine), waiting until half the prefetch was gone left slots idle (#18).
        self.notify()

    def _wake_at(self, when: float) -> None:
        if self._next_wake_at is None or when < self._next_wake_at:
            self._next_wake_at = when
