"""The PostgreSQL queue's work cycle: put, lease, renew, and settling each lease (ack, reschedule, release,
dead-letter). What the dispatchers of every router run all day; see :class:`.backend.PostgresQueue`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final, Unpack

import asyncpg

from cxone_eventbridge.exceptions import QueueError
from cxone_eventbridge.router.queue.postgres import statements as sql
from cxone_eventbridge.router.queue.postgres.connection import ClockOffset, ConnectionOptions, PostgresConnection
from cxone_eventbridge.router.queue.protocols import NO_LIMITS
from cxone_eventbridge.router.queue.records import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Delivery,
    PutResult,
    QueuedEvent,
    TargetLimits,
    delivery_id_for,
)
from cxone_eventbridge.router.queue.scheduler import Candidate, FairScheduler, limited_caps, mark_probes, rate_slots

ACK_BATCH: Final = 32  # acks written at once, without waiting for more
ACK_GATHER_S: Final = 0.005  # how long a smaller batch of acks waits for more


class PostgresWorkCycle(PostgresConnection):
    """The :class:`~cxone_eventbridge.router.queue.WorkCycle` of a PostgreSQL queue."""

    def __init__(
        self,
        dsn: str,
        *,
        priority_weights: Sequence[float] | None = None,
        lease_at_once: bool = True,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        """``lease_at_once``: whether a lease may go in one statement when it can (``_lease_at_once``); off,
        every lease goes in steps (the contract tests run both ways)."""
        super().__init__(dsn, **options)
        self._lease_at_once_allowed = lease_at_once
        self._scheduler = FairScheduler(priority_weights)
        self._clock_offset = ClockOffset()
        self._acks: list[tuple[int, str, int, int | None, asyncio.Future[None]]] = []
        self._ack_task: asyncio.Task[None] | None = None
        self._ack_batch_full = asyncio.Event()
        # Whether the last lease saw what a lease in one statement would choose differently from the scheduler
        # or leave out (work of several priorities ready, or a shared circuit): the next one goes in steps.
        self._lease_in_steps = False

    async def _finish_writes(self) -> None:
        if self._ack_task is not None:
            with contextlib.suppress(Exception):  # each waiting ack got the error; closing goes on
                await self._ack_task

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        for event in events:
            if not MIN_PRIORITY <= event.priority <= MAX_PRIORITY:
                raise ValueError(f"priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, got {event.priority}")
        matched = [e for e in events if e.targets or self.keep_unmatched]
        if not matched:
            return [PutResult(e.event_id, ()) for e in events]
        # Each event's (target, delivery id) pairs, computed once: for the statement and for the results.
        pairs = [[(t, delivery_id_for(e.event_id, t)) for t in dict.fromkeys(e.targets)] for e in events]
        event_ids, targets, dids = [], [], []
        for event, mine in zip(events, pairs, strict=True):
            for target, did in mine:
                event_ids.append(event.event_id)
                targets.append(target)
                dids.append(did)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                sql.PUT,
                self._now(),
                [e.event_id for e in matched],
                [e.body for e in matched],
                [e.priority for e in matched],
                [e.accepted_at for e in matched],
                event_ids,
                targets,
                dids,
                self.channel,
            )
            assert row is not None  # one row, always
            created = set(row[0] or ())
            raced = {e.event_id for e in matched} - set(row[1] or ())
            if raced:  # inserted by another router while this statement ran; rare
                created |= await self._put_raced(conn, [e for e in matched if e.event_id in raced])
        results = []
        for event, mine in zip(events, pairs, strict=True):
            new = []
            for target, did in mine:
                if did in created:
                    created.discard(did)  # an id repeated in the batch: its first occurrence created it
                    new.append(target)
            results.append(PutResult(event.event_id, tuple(new)))
        return results

    async def _put_raced(self, conn: asyncpg.Connection, events: list[QueuedEvent]) -> set[str]:
        """Put again, in two statements, events whose ids another router inserted concurrently."""
        event_ids, targets, dids = [], [], []
        for event in events:
            for target in dict.fromkeys(event.targets):
                event_ids.append(event.event_id)
                targets.append(target)
                dids.append(delivery_id_for(event.event_id, target))
        async with conn.transaction():
            await conn.execute(
                sql.PUT_EVENTS,
                [e.event_id for e in events],
                [e.body for e in events],
                [e.priority for e in events],
                [e.accepted_at for e in events],
            )
            created = {row[0] for row in await conn.fetch(sql.PUT_DELIVERIES, self._now(), event_ids, targets, dids)}
            if created:
                await self._notify(conn)
        return created

    async def lease(
        self,
        wants: Mapping[str, int],
        *,
        limit: int,
        lease_s: float,
        limits: Mapping[str, TargetLimits] = NO_LIMITS,
    ) -> list[Delivery]:
        wanted = {t: n for t, n in wants.items() if n > 0}
        if limit <= 0 or not wanted:
            return []
        # Targets with delivery limits are leased one router at a time (below); the others' candidates come
        # with the lease's first statement, which also reads the clock and the shared target state. Without
        # limited targets, and unless the last lease saw several priorities or a shared circuit, the whole
        # lease is one statement (_lease_at_once): the same deliveries, a quarter of the round trips.
        configured = {t for t in wanted if (lim := limits.get(t)) is not None and lim.limited}
        free = {t: min(n, limit) for t, n in wanted.items() if t not in configured}
        if not configured and self._lease_at_once_allowed and not self._lease_in_steps:
            return await self._lease_at_once(free, limit=limit, lease_s=lease_s)
        async with self._connection(durable=False) as conn, conn.transaction():
            rows = await conn.fetch(sql.LEASE_START, self._now(), list(free), list(free.values()))
            now: float = rows[0][0]  # at least one row, always
            offset = self._clock_offset.sample(self._local(), rows[0][1])
            for name in rows[0][2]:
                wanted.pop(name, None)
            circuits = {name: until for name, until in zip(rows[0][3], rows[0][4], strict=True) if name in wanted}
            # Candidates of targets neither disabled nor with a shared circuit (the statement left those out).
            candidates = [_candidate(row, 5) for row in rows if row[5] is not None]
            caps = {t: wanted[t] for t in free if t in wanted and t not in circuits}
            # Limited targets and those with a shared circuit are leased by one router at a time.
            limited = sorted(t for t in wanted if t in configured or t in circuits)
            leased: dict[str, int] = {}
            next_slot_at: dict[str, float | None] = {}
            slot_clock = now
            if limited:
                # Send slots and probes must survive a database crash, or a recovered database hands them
                # out again; the leases of unlimited targets need not (a lost lease is a redelivery).
                await conn.execute(sql.DURABLE_COMMIT)
                await conn.execute(sql.TARGET_ROWS, limited)
                await conn.execute(sql.LOCK_LIMITED, limited)
                state = await conn.fetch(sql.LIMITED_STATE, self._now(), now, limited)
                for name, slot, _, count in state:
                    leased[name], next_slot_at[name] = count, slot
                slot_clock = state[0][2]  # one row per limited target, made above
                # Slots start from the clock read after the lock (which may have waited for another router's
                # lease), and reach this process's clock through the best offset estimate, not this lease's.
                offset = self._clock_offset.sample(self._local(), slot_clock)
                limited_wants = {t: wanted[t] for t in limited}
                more = limited_caps(
                    limited_wants,
                    limits,
                    leased=leased,
                    next_slot_at=next_slot_at,
                    now=slot_clock,
                    circuit_open_until=circuits,
                )
                if more:
                    extra = await conn.fetch(sql.CANDIDATES, now, list(more), [min(c, limit) for c in more.values()])
                    candidates += [_candidate(row) for row in extra]
                    caps.update(more)
            self._lease_in_steps = bool(circuits) or _mixed_priorities(candidates)
            if not caps:
                return []
            chosen = self._scheduler.choose(candidates, caps, limit)
            if not chosen:
                return []
            token = uuid.uuid4().hex
            claimed = await conn.fetch(
                sql.CLAIM, now, [c.key for c in chosen], self.owner, self.incarnation, token, lease_s
            )
            by_id = {row[0]: row for row in claimed}
            deliveries = [_delivery(row, token, offset) for c in chosen if (row := by_id.get(c.key)) is not None]
            paced = await self._pace(
                conn, deliveries=deliveries, limits=limits, next_slot_at=next_slot_at, now=slot_clock, offset=offset
            )
            return mark_probes(paced, circuits, now)

    async def _lease_at_once(self, caps: dict[str, int], *, limit: int, lease_s: float) -> list[Delivery]:
        """A lease in one statement (LEASE_CLAIM) for targets without delivery limits: with work of one
        priority ready, it claims what the scheduler would choose. With several, it claims up to ``limit`` of
        the most urgent, the scheduler chooses among them, the rest are given back, and the leases that
        follow go in steps (where the scheduler weighs every ready priority) until one priority is ready
        again. Targets with a shared circuit are left out, for the next lease (in steps) to probe."""
        token = uuid.uuid4().hex
        async with self._connection(durable=False) as conn:
            rows = await conn.fetch(
                sql.LEASE_CLAIM,
                self._now(),
                list(caps),
                list(caps.values()),
                self.owner,
                self.incarnation,
                token,
                lease_s,
                limit,
            )
            offset = self._clock_offset.sample(self._local(), rows[0][1])  # at least one row, always
            claimed = {row[6]: row for row in rows if row[6] is not None}
            candidates = [Candidate(row[15], key, row[9], row[10], key) for key, row in claimed.items()]
            self._lease_in_steps = rows[0][5] > 1 or any(name in caps for name in rows[0][3])
            chosen = self._scheduler.choose(candidates, caps, limit)
            if len(chosen) < len(claimed):
                keys = {c.key for c in chosen}
                unchosen = [key for key in claimed if key not in keys]
                async with conn.transaction():
                    await conn.execute(sql.RELEASE, unchosen, [token] * len(unchosen))
                    await self._notify(conn)
        return [_delivery(claimed[c.key], token, offset, at=6) for c in chosen]

    @staticmethod
    async def _pace(
        conn: asyncpg.Connection,
        *,
        deliveries: list[Delivery],
        limits: Mapping[str, TargetLimits],
        next_slot_at: Mapping[str, float | None],
        now: float,
        offset: float,
    ) -> list[Delivery]:
        """Give each delivery of a rate-limited target its send slot, and store where the next one starts."""
        counts: dict[str, int] = {}
        for delivery in deliveries:
            counts[delivery.target] = counts.get(delivery.target, 0) + 1
        slots: dict[str, list[float]] = {}
        advanced: dict[str, float] = {}
        for target, count in counts.items():
            limit = limits.get(target)
            if limit is not None and limit.rate_per_s is not None:
                times, advanced[target] = rate_slots(next_slot_at.get(target), limit.rate_per_s, now, count)
                slots[target] = [t + offset for t in reversed(times)]
        if not slots:
            return deliveries
        await conn.execute(sql.NEXT_SLOTS, list(advanced), list(advanced.values()))
        return [replace(d, not_before=slots[d.target].pop()) if d.target in slots else d for d in deliveries]

    async def renew(self, deliveries: Sequence[Delivery], *, lease_s: float) -> list[Delivery]:
        if not deliveries:
            return []
        async with self._connection(durable=False) as conn:
            rows = await conn.fetch(
                sql.RENEW, self._now(), [int(d.key) for d in deliveries], [d.lease_token for d in deliveries], lease_s
            )
        local = self._local()
        held = {str(row[0]): row[1] + local - row[2] for row in rows}  # in this process's clock
        return [replace(d, lease_until=held[d.key]) for d in deliveries if d.key in held]

    async def ack(self, delivery: Delivery, *, status: int | None = None) -> None:
        # Acks come one per delivery, many at once, and are written together: those made while a statement
        # is on its way, or within ACK_GATHER_S of the first, join one statement (River's batch completer).
        # A statement costs ~100 us of database CPU whatever it settles; joined only while one was on its
        # way, acks went 5-7 to a statement end to end. A batch of ACK_BATCH goes at once, so a serial
        # put-lease-ack cycle of a whole batch waits for nothing; the slot an attempt held is free before
        # its ack is made (the dispatcher), so the wait delays no delivery.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.append((int(delivery.key), delivery.lease_token, delivery.attempts + 1, status, waiter))
        if len(self._acks) >= ACK_BATCH:
            self._ack_batch_full.set()
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.create_task(self._flush_acks())
        await waiter

    async def _flush_acks(self) -> None:
        while self._acks:
            if len(self._acks) < ACK_BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ACK_GATHER_S):
                        await self._ack_batch_full.wait()
            self._ack_batch_full.clear()
            batch, self._acks = self._acks, []
            error: BaseException | None = None
            try:
                async with self._connection(durable=False) as conn:
                    await conn.execute(
                        sql.ACK,
                        self._now(),
                        [a[0] for a in batch],
                        [a[1] for a in batch],
                        [a[2] for a in batch],
                        [a[3] for a in batch],
                    )
            except QueueError as exc:
                error = exc
            for *_, waiter in batch:
                if waiter.done():
                    continue  # the caller was cancelled; the ack has still been applied (or not)
                if error is not None:
                    waiter.set_exception(error)
                else:
                    waiter.set_result(None)

    async def reschedule(
        self, delivery: Delivery, *, delay_s: float, last_status: int | None, last_error: str | None
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                sql.RESCHEDULE,
                self._now(),
                int(delivery.key),
                delivery.lease_token,
                delivery.attempts + 1,
                delay_s,
                last_status,
                last_error,
            )

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        async with self._connection(durable=False) as conn, conn.transaction():
            await conn.execute(sql.RELEASE, [int(d.key) for d in deliveries], [d.lease_token for d in deliveries])
            await self._notify(conn)

    async def dead_letter(
        self, delivery: Delivery, *, reason: str, last_status: int | None, last_error: str | None
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                sql.DEAD_LETTER,
                self._now(),
                int(delivery.key),
                delivery.lease_token,
                delivery.attempts + 1,
                reason,
                last_status,
                last_error,
            )


def _delivery(row: asyncpg.Record, token: str, offset: float, at: int = 0) -> Delivery:
    """The delivery in ``row``'s columns ``at`` to ``at + 8`` (CLAIM's nine; from 6 in LEASE_CLAIM's rows),
    leased under ``token``; ``offset`` takes its lease end to this process's clock."""
    return Delivery(
        key=str(row[at]),
        lease_token=token,
        delivery_id=row[at + 1],
        event_id=row[at + 2],
        target=row[at + 3],
        priority=row[at + 4],
        body=bytes(row[at + 5]),
        attempts=row[at + 6],
        accepted_at=row[at + 7],
        lease_until=row[at + 8] + offset,
    )


def _mixed_priorities(candidates: Sequence[Candidate[int]]) -> bool:
    """Whether the candidates are of more than one priority (the scheduler then weighs them)."""
    return len({c.priority for c in candidates}) > 1


def _candidate(row: asyncpg.Record, at: int = 0) -> Candidate[int]:
    """The candidate in ``row``'s columns ``at`` to ``at + 3``: id, target, priority, next_attempt_at (the
    columns of CANDIDATES, and of LEASE_START after its five of clock and target state)."""
    key = row[at]
    return Candidate(row[at + 3], key, row[at + 1], row[at + 2], key)
