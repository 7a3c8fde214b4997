"""The SQLite queue's work cycle: put, lease, renew, ack, reschedule, release, dead-letter.

A lease queries only the (target, priority) pairs the hints say may have ready rows, each with an
indexed ``LIMIT``, and hands the candidates to the shared :class:`~..scheduler.FairScheduler`. When the
pairs are of one priority, one statement reads them all and keeps only the first ``limit`` in the
scheduler's order, all it could choose (``_ready_of_one_priority``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

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
from cxone_eventbridge.router.queue.scheduler import Candidate, limited_caps, mark_probes, rate_slots
from cxone_eventbridge.router.queue.sqlite import schema
from cxone_eventbridge.router.queue.sqlite.store import SQLiteStore, chunks, marks, padded, power_of_two_chunks

_PUT_CHUNK: Final = 512  # events per multi-row INSERT: 4 parameters each, well under SQLite's limit
_UNION_MAX_PAIRS: Final = 256  # (target, priority) pairs in one compound SELECT (SQLite allows 500 terms)
# One (target, priority) pair's ready rows, oldest first, up to what it asks.
_READY_OF_PAIR: Final = (
    "SELECT next_attempt_at, seq, target FROM deliveries WHERE state = 0 AND target = ? AND priority = ?"
    " AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?"
)
# A term of a compound SELECT (whose terms cannot have an ORDER BY or LIMIT of their own).
_READY_OF_PAIR_TERM: Final = f"SELECT * FROM ({_READY_OF_PAIR})"  # noqa: S608 -- constants only


class SQLiteWorkCycle(SQLiteStore):
    """The :class:`~..protocols.WorkCycle` of the SQLite queue."""

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        for event in events:
            if not MIN_PRIORITY <= event.priority <= MAX_PRIORITY:
                raise ValueError(f"priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, got {event.priority}")
        rows = [
            (event, [(target, delivery_id_for(event.event_id, target)) for target in dict.fromkeys(event.targets)])
            for event in events
        ]
        return await self._executor.submit(lambda conn: self._put(conn, rows))

    def _put(self, conn: sqlite3.Connection, rows: list[tuple[QueuedEvent, list[tuple[str, str]]]]) -> list[PutResult]:
        results: list[PutResult] = [PutResult(event.event_id, ()) for event, _ in rows]
        matched = [
            (index, event, targets) for index, (event, targets) in enumerate(rows) if targets or self.keep_unmatched
        ]
        # New events go in with one multi-row INSERT per chunk and their deliveries with one executemany
        # (a statement per event cost about 6 us more per event). An id already stored, or repeated in
        # this batch, is not inserted again; such events are handled one by one below.
        fresh: dict[str, int] = {}
        for chunk in power_of_two_chunks(matched, _PUT_CHUNK):
            params: list[Any] = []
            for _, event, _ in chunk:
                params += (event.event_id, event.body, event.priority, event.accepted_at)
            inserted = conn.execute(
                "INSERT INTO events (event_id, body, priority, accepted_at) VALUES "  # noqa: S608 -- only placeholders are interpolated
                + ",".join(["(?, ?, ?, ?)"] * len(chunk))
                + " ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
                params,
            ).fetchall()
            fresh.update((event_id, seq) for seq, event_id in inserted)
        deliveries: list[tuple[int, str, str, int, float, float]] = []
        repeated: list[tuple[int, QueuedEvent, list[tuple[str, str]]]] = []
        for index, event, targets in matched:
            event_seq = fresh.pop(event.event_id, None)
            if event_seq is None:
                repeated.append((index, event, targets))
                continue
            priority, accepted_at = event.priority, event.accepted_at
            for target, did in targets:
                deliveries.append((event_seq, did, target, priority, accepted_at, accepted_at))
                self._hint(target, priority, accepted_at)
            results[index] = PutResult(event.event_id, tuple(target for target, _ in targets))
        conn.executemany(schema.INSERT_DELIVERY, deliveries)
        for index, event, targets in repeated:
            # The same event id again: its deliveries exist; add only targets it did not have yet.
            event_seq, priority, accepted_at = conn.execute(
                "SELECT seq, priority, accepted_at FROM events WHERE event_id = ?", (event.event_id,)
            ).fetchone()
            created = []
            for target, did in targets:
                cursor = conn.execute(
                    schema.INSERT_DELIVERY + " ON CONFLICT (event_seq, target) DO NOTHING",
                    (event_seq, did, target, priority, accepted_at, accepted_at),
                )
                if cursor.rowcount == 1:
                    created.append(target)
                    self._hint(target, priority, accepted_at)
            results[index] = PutResult(event.event_id, tuple(created))
        return results

    async def lease(
        self,
        wants: Mapping[str, int],
        *,
        limit: int,
        lease_s: float,
        limits: Mapping[str, TargetLimits] = NO_LIMITS,
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        wanted = {t: n for t, n in wants.items() if n > 0}
        return await self._executor.submit(lambda conn: self._lease(conn, wanted, limit, lease_s, limits))

    def _lease(
        self,
        conn: sqlite3.Connection,
        wants: dict[str, int],
        limit: int,
        lease_s: float,
        limits: Mapping[str, TargetLimits],
    ) -> list[Delivery]:
        now = self._clock()
        if now >= self._lease_sweep_at:
            # Leases that ran out are offered again. Only when one may have: this statement cost about
            # 30 µs per lease even when it found nothing (#18).
            for target, priority, next_at in conn.execute(
                f"UPDATE deliveries SET state = 0, {schema.NO_LEASE}"  # noqa: S608 -- a constant
                " WHERE state = 1 AND lease_until <= ? RETURNING target, priority, next_attempt_at",
                (now,),
            ).fetchall():
                self._hint(target, priority, next_at)
            earliest = conn.execute("SELECT MIN(lease_until) FROM deliveries WHERE state = 1").fetchone()[0]
            self._lease_sweep_at = float("inf") if earliest is None else earliest
        for (name,) in conn.execute("SELECT name FROM disabled_targets"):
            wants.pop(name, None)
        circuits = {
            name: until for name, until in conn.execute("SELECT name, open_until FROM circuits") if name in wants
        }
        capped = [
            t for t in wants if ((lim := limits.get(t)) is not None and lim.max_in_flight is not None) or t in circuits
        ]
        paced = [t for t in wants if (lim := limits.get(t)) is not None and lim.rate_per_s is not None]
        next_slot_at: dict[str, float | None] = {}
        if paced:
            next_slot_at.update(
                conn.execute(
                    f"SELECT name, next_slot_at FROM target_slots WHERE name IN ({marks(len(paced))})",  # noqa: S608 -- only placeholders are interpolated
                    paced,
                ).fetchall()
            )
        leased: dict[str, int] = {}
        if capped:
            leased = dict(
                conn.execute(
                    f"SELECT target, COUNT(*) FROM deliveries WHERE state = 1 AND target IN ({marks(len(capped))})"  # noqa: S608 -- only placeholders are interpolated
                    " GROUP BY target",
                    capped,
                ).fetchall()
            )
        caps = limited_caps(
            wants, limits, leased=leased, next_slot_at=next_slot_at, now=now, circuit_open_until=circuits
        )
        if not caps:
            return []
        due = [
            (target, priority, min(cap, limit))
            for (target, priority), earliest in self._hints.items()
            if (cap := caps.get(target)) is not None and earliest <= now
        ]
        if 1 < len(due) <= _UNION_MAX_PAIRS and len({priority for _, priority, _ in due}) == 1:
            candidates, fetched = _ready_of_one_priority(conn, due, now, limit)
        else:
            candidates, fetched = [], {}
            for target, priority, asked in due:
                rows = conn.execute(_READY_OF_PAIR, (target, priority, now, asked)).fetchall()
                fetched[(target, priority)] = (asked, len(rows))
                candidates.extend(Candidate(next_at, seq, target, priority, seq) for next_at, seq, _ in rows)
        chosen = self._scheduler.choose(candidates, caps, limit)
        taken: dict[tuple[str, int], int] = {}
        for candidate in chosen:
            pair = (candidate.target, candidate.priority)
            taken[pair] = taken.get(pair, 0) + 1
        for pair, (asked, got) in fetched.items():  # the pairs whose every ready row (up to asked) was seen
            if got < asked and taken.get(pair, 0) == got:
                # Every ready row of the pair is leased now: what remains (if anything) is scheduled later.
                later = conn.execute(
                    "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 0 AND target = ? AND priority = ?",
                    pair,
                ).fetchone()[0]
                if later is None:
                    self._hints.pop(pair, None)
                else:
                    self._hints[pair] = later
        if not chosen:
            return []
        deliveries = self._claim(conn, [c.key for c in chosen], now, lease_s)
        return mark_probes(self._pace(conn, deliveries, now, limits, next_slot_at), circuits, now)

    def _claim(self, conn: sqlite3.Connection, seqs: list[int], now: float, lease_s: float) -> list[Delivery]:
        token = uuid.uuid4().hex
        lease_until = now + lease_s
        self._lease_sweep_at = min(self._lease_sweep_at, lease_until)
        by_seq: dict[int, Sequence[Any]] = {}
        for chunk in chunks(seqs):
            keys = padded(chunk)
            placeholders = marks(len(keys))
            conn.execute(
                "UPDATE deliveries SET state = 1, lease_owner = ?, lease_incarnation = ?, lease_token = ?,"  # noqa: S608 -- only placeholders are interpolated
                f" lease_until = ? WHERE seq IN ({placeholders})",
                (self.owner, self.incarnation, token, lease_until, *keys),
            )
            rows = conn.execute(
                "SELECT d.seq, d.delivery_id, e.event_id, d.target, d.priority, e.body, d.attempts, d.accepted_at"  # noqa: S608 -- only placeholders are interpolated
                f" FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq IN ({placeholders})",
                keys,
            ).fetchall()
            by_seq.update((row[0], row) for row in rows)
        return [
            Delivery(
                key=str(seq),
                lease_token=token,
                delivery_id=row[1],
                event_id=row[2],
                target=row[3],
                priority=row[4],
                body=bytes(row[5]),
                attempts=row[6],
                accepted_at=row[7],
                lease_until=lease_until,
            )
            for seq in seqs
            if (row := by_seq.get(seq)) is not None
        ]

    @staticmethod
    def _pace(
        conn: sqlite3.Connection,
        deliveries: list[Delivery],
        now: float,
        limits: Mapping[str, TargetLimits],
        next_slot_at: Mapping[str, float | None],
    ) -> list[Delivery]:
        """Give each delivery of a rate-limited target its send slot, and store where the next one starts."""
        counts: dict[str, int] = {}
        for delivery in deliveries:
            counts[delivery.target] = counts.get(delivery.target, 0) + 1
        slots: dict[str, list[float]] = {}
        for target, count in counts.items():
            limit = limits.get(target)
            if limit is not None and limit.rate_per_s is not None:
                times, following = rate_slots(next_slot_at.get(target), limit.rate_per_s, now, count)
                conn.execute(
                    "INSERT INTO target_slots (name, next_slot_at) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET next_slot_at = excluded.next_slot_at",
                    (target, following),
                )
                slots[target] = times[::-1]
        if not slots:
            return deliveries
        return [replace(d, not_before=slots[d.target].pop()) if d.target in slots else d for d in deliveries]

    async def renew(self, deliveries: Sequence[Delivery], *, lease_s: float) -> list[Delivery]:
        if not deliveries:
            return []
        items = list(deliveries)

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            until = self._clock() + lease_s
            held = []
            for delivery in items:
                if conn.execute(schema.RENEW, (until, int(delivery.key), delivery.lease_token)).fetchone():
                    held.append(replace(delivery, lease_until=until))
            return held

        return await self._executor.submit(op)

    async def ack(self, delivery: Delivery, *, status: int | None = None) -> None:
        row = (delivery.attempts + 1, self._clock(), status, int(delivery.key), delivery.lease_token)
        await self._executor.execute_grouped(schema.ACK, row)

    async def reschedule(
        self, delivery: Delivery, *, delay_s: float, last_status: int | None, last_error: str | None
    ) -> None:
        next_attempt_at = self._clock() + delay_s

        def op(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                schema.RESCHEDULE,
                (
                    delivery.attempts + 1,
                    next_attempt_at,
                    last_status,
                    last_error,
                    int(delivery.key),
                    delivery.lease_token,
                ),
            )
            if cursor.rowcount:
                self._hint(delivery.target, delivery.priority, next_attempt_at)

        await self._executor.submit(op)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        items = [(int(d.key), d.lease_token) for d in deliveries]

        def op(conn: sqlite3.Connection) -> None:
            for item in items:
                for target, priority, next_at in conn.execute(schema.RELEASE, item).fetchall():
                    self._hint(target, priority, next_at)

        await self._executor.submit(op)

    async def dead_letter(
        self, delivery: Delivery, *, reason: str, last_status: int | None, last_error: str | None
    ) -> None:
        row = (
            delivery.attempts + 1,
            reason,
            self._clock(),
            last_status,
            last_error,
            int(delivery.key),
            delivery.lease_token,
        )

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(schema.DEAD_LETTER, row)

        await self._executor.submit(op)

    def on_ready(self, callback: Callable[[], None]) -> None:
        """One process owns the file: its own ingest wakes its dispatcher, so there is nothing to listen to."""


def _ready_of_one_priority(
    conn: sqlite3.Connection, due: list[tuple[str, int, int]], now: float, limit: int
) -> tuple[list[Candidate[int]], dict[tuple[str, int], tuple[int, int]]]:
    """The candidates of several (target, priority) pairs of one priority, each up to what it asks: only the
    first ``limit`` of them in the scheduler's order (``next_attempt_at``, then insertion), which is all the
    scheduler can choose from one priority, in one statement. With many busy targets, reading each pair's
    candidates on its own made thousands of rows a lease for the scheduler to sort and pass over (50
    targets asking 123 each, limit 256: 6,150 candidates, ~11 ms a lease). Also what each pair had ready
    (asked, got) when the cut took nothing away, for the hints; when it did, nothing is known of any pair.
    """
    terms = padded(due)  # a power-of-two count of terms, so few statement texts; the padding asks for 0
    terms[len(due) :] = [(target, priority, 0) for target, priority, _ in terms[len(due) :]]
    params: list[Any] = []
    for target, priority, asked in terms:
        params += (target, priority, now, asked)
    rows = conn.execute(
        " UNION ALL ".join([_READY_OF_PAIR_TERM] * len(terms)) + " ORDER BY 1, 2 LIMIT ?",
        (*params, limit),
    ).fetchall()
    priority = due[0][1]
    candidates = [Candidate(next_at, seq, target, priority, seq) for next_at, seq, target in rows]
    if len(rows) >= limit:
        return candidates, {}
    got: dict[str, int] = {}
    for _, _, target in rows:
        got[target] = got.get(target, 0) + 1
    return candidates, {(target, p): (asked, got.get(target, 0)) for target, p, asked in due}
