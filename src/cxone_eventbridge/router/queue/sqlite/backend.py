"""The embedded delivery queue: one SQLite file in WAL mode, written through group commit.

Durability: ``synchronous=FULL`` by default, so a committed ``put`` survives a crash of the machine, not
only of the process; :mod:`.executor` keeps that from being the bottleneck. Target state (disabled
targets, the next send slot of rate-limited ones) is kept in the file, as a shared backend keeps it in
its database, so that it survives a restart and every queue object on the file sees the same.

Finding ready work: ``_hints`` maps each (target, priority) that may have pending rows to a lower bound
of their ``next_attempt_at``, so a lease queries only pairs that may have work, each with an indexed
``LIMIT``, and hands the candidates to the shared :class:`~..scheduler.FairScheduler`.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Literal

from cxone_eventbridge.exceptions import QueueCorruptError
from cxone_eventbridge.router.queue.migrations import latest_version, log_migrated, pending_migrations
from cxone_eventbridge.router.queue.protocols import NO_LIMITS
from cxone_eventbridge.router.queue.records import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    DeliveryState,
    PutResult,
    QueuedEvent,
    QueueStats,
    SharedCircuit,
    TargetLimits,
    delivery_id_for,
)
from cxone_eventbridge.router.queue.scheduler import Candidate, FairScheduler, limited_caps, mark_probes, rate_slots
from cxone_eventbridge.router.queue.sqlite import schema
from cxone_eventbridge.router.queue.sqlite.executor import GroupCommitExecutor

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_PUT_CHUNK: Final = 500  # events per multi-row INSERT: 4 parameters each, well under SQLite's limit
_IN_CHUNK: Final = 500  # keys per "seq IN (...)", well under SQLite's bound-parameter limit


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SQLiteQueue:
    """A :class:`~cxone_eventbridge.router.queue.DeliveryQueue` in one SQLite file.

    ``owner`` names this router (stable across restarts); ``incarnation`` is fresh on every start, so
    ``reclaim()`` can tell this process's leases from those of a previous, crashed one.
    ``max_size_bytes`` caps the database file: beyond it writes fail with ``QueueFullError``, as a full
    disk does. ``clock`` is the backend's time (Unix seconds); ``migrate`` applies missing schema steps
    on open (the embedded default), otherwise a file behind this code is refused.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        owner: str = "local",
        incarnation: str | None = None,
        synchronous: Synchronous = "FULL",
        max_size_bytes: int | None = None,
        priority_weights: Sequence[float] | None = None,
        clock: Callable[[], float] = time.time,
        migrate: bool = True,
    ) -> None:
        self.path = Path(path)
        self.owner = owner
        self.incarnation = incarnation or uuid.uuid4().hex
        self.synchronous: Synchronous = synchronous
        self.schema_version: int | None = None  # once open
        self._max_size_bytes = max_size_bytes
        self._clock = clock
        self._migrate = migrate
        self._scheduler = FairScheduler(priority_weights)
        # (target, priority) -> a lower bound on the next_attempt_at of its pending rows. A superset of
        # the pairs that have pending rows, so a lease queries only pairs that may have work.
        self._hints: dict[tuple[str, int], float] = {}
        self._executor = GroupCommitExecutor(on_rollback=self._rebuild_hints)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._executor.open(self._connect)

    async def close(self) -> None:
        """Commit what was submitted before, then close the file."""
        await self._executor.close()

    async def __aenter__(self) -> SQLiteQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used by the loop's thread and the worker in turn, never at once (see the executor).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            self._check_integrity(conn)
            if self._max_size_bytes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self._max_size_bytes // page_size)}")
            self._apply_migrations(conn)
            self._rebuild_hints(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        """Refuse a damaged file at open, rather than accept events into it and fail later.

        ``quick_check`` reads every page once (O(file size); it skips the index cross-checks of
        ``integrity_check``): a few milliseconds per MB here.
        """
        try:
            problems = [" ".join(str(row[0]).split()) for row in conn.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:  # a header too damaged for the check itself
            problems = [str(exc)]
        if problems != ["ok"]:
            raise QueueCorruptError(
                f"the queue file {self.path} is damaged (SQLite quick_check: {'; '.join(problems)}); "
                f"the router will not use it. Restore it from a backup, or move it aside to start with an "
                f"empty queue (`sqlite3 {self.path} .recover` may salvage its undelivered events)"
            )

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        pending = pending_migrations(current, schema.MIGRATIONS, backend="SQLite", migrate=self._migrate)
        for migration in pending:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version:d}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.schema_version = max(current, latest_version(schema.MIGRATIONS))
        if pending:
            log_migrated("SQLite", str(self.path), current, self.schema_version)

    # -- hints -------------------------------------------------------------------------------------

    def _rebuild_hints(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT target, priority, MIN(next_attempt_at) FROM deliveries WHERE state = 0 GROUP BY target, priority"
        ).fetchall()
        self._hints = {(target, priority): earliest for target, priority, earliest in rows}

    def _hint(self, target: str, priority: int, next_attempt_at: float) -> None:
        key = (target, priority)
        current = self._hints.get(key)
        if current is None or next_attempt_at < current:
            self._hints[key] = next_attempt_at

    # -- the work cycle ----------------------------------------------------------------------------

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
        matched = [(index, event, targets) for index, (event, targets) in enumerate(rows) if targets]
        # New events go in with one multi-row INSERT per chunk and their deliveries with one executemany
        # (a statement per event cost about 6 us more per event). An id already stored, or repeated in
        # this batch, is not inserted again; such events are handled one by one below.
        fresh: dict[str, int] = {}
        for chunk in _chunks(matched, _PUT_CHUNK):
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
        for target, priority, next_at in conn.execute(
            f"UPDATE deliveries SET state = 0, {schema.NO_LEASE}"  # noqa: S608 -- a constant
            " WHERE state = 1 AND lease_until <= ? RETURNING target, priority, next_attempt_at",
            (now,),
        ).fetchall():
            self._hint(target, priority, next_at)
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
                    f"SELECT name, next_slot_at FROM target_slots WHERE name IN ({_marks(len(paced))})",  # noqa: S608 -- only placeholders are interpolated
                    paced,
                ).fetchall()
            )
        leased: dict[str, int] = {}
        if capped:
            leased = dict(
                conn.execute(
                    f"SELECT target, COUNT(*) FROM deliveries WHERE state = 1 AND target IN ({_marks(len(capped))})"  # noqa: S608 -- only placeholders are interpolated
                    " GROUP BY target",
                    capped,
                ).fetchall()
            )
        caps = limited_caps(
            wants, limits, leased=leased, next_slot_at=next_slot_at, now=now, circuit_open_until=circuits
        )
        if not caps:
            return []
        candidates: list[Candidate[int]] = []
        fetched: dict[tuple[str, int], tuple[int, int]] = {}  # pair -> (asked, got)
        for (target, priority), earliest in list(self._hints.items()):
            cap = caps.get(target)
            if cap is None or earliest > now:
                continue
            asked = min(cap, limit)
            rows = conn.execute(
                "SELECT next_attempt_at, seq FROM deliveries WHERE state = 0 AND target = ? AND priority = ?"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
                (target, priority, now, asked),
            ).fetchall()
            fetched[(target, priority)] = (asked, len(rows))
            candidates.extend(Candidate(next_at, seq, target, priority, seq) for next_at, seq in rows)
        chosen = self._scheduler.choose(candidates, caps, limit)
        taken: dict[tuple[str, int], int] = {}
        for candidate in chosen:
            pair = (candidate.target, candidate.priority)
            taken[pair] = taken.get(pair, 0) + 1
        for pair, (asked, got) in fetched.items():
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
        by_seq: dict[int, Sequence[Any]] = {}
        for chunk in _chunks(seqs):
            marks = _marks(len(chunk))
            conn.execute(
                "UPDATE deliveries SET state = 1, lease_owner = ?, lease_incarnation = ?, lease_token = ?,"  # noqa: S608 -- only placeholders are interpolated
                f" lease_until = ? WHERE seq IN ({marks})",
                (self.owner, self.incarnation, token, lease_until, *chunk),
            )
            rows = conn.execute(
                "SELECT d.seq, d.delivery_id, e.event_id, d.target, d.priority, e.body, d.attempts, d.accepted_at"  # noqa: S608 -- only placeholders are interpolated
                f" FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq IN ({marks})",
                chunk,
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

    # -- dead letters ------------------------------------------------------------------------------

    @staticmethod
    def _dead_letters_by_seq(conn: sqlite3.Connection, seqs: list[int]) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for chunk in _chunks(seqs):
            rows = conn.execute(
                f"SELECT {schema.DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608 -- only placeholders are interpolated
                f" WHERE d.seq IN ({_marks(len(chunk))}) ORDER BY d.seq",
                chunk,
            ).fetchall()
            letters.extend(DeadLetter.from_row(row) for row in rows)
        return letters

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            where = "d.state = 3" + (" AND d.target = ?" if target is not None else "")
            params: tuple[Any, ...] = (target, limit) if target is not None else (limit,)
            rows = conn.execute(
                f"SELECT {schema.DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608 -- fixed SQL text, values are bound
                f" WHERE {where} ORDER BY d.done_at DESC, d.seq DESC LIMIT ?",
                params,
            ).fetchall()
            return [DeadLetter.from_row(row) for row in rows]

        return await self._executor.submit(op, offload=True)

    @staticmethod
    def _selected(
        sql: str, params: list[Any], delivery_ids: Sequence[str] | None, target: str | None
    ) -> list[tuple[str, list[Any]]]:
        """``sql`` narrowed to a target and to the named deliveries (in chunks), with its parameters."""
        if target is not None:
            sql += " AND target = ?"
            params = [*params, target]
        if delivery_ids is None:
            return [(sql, params)]
        return [
            (sql + f" AND delivery_id IN ({_marks(len(chunk))})", [*params, *chunk])
            for chunk in _chunks(list(delivery_ids))
        ]

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        now = self._clock()
        # A replay starts over: a fresh retry budget and a fresh age, so it is not expired at once.
        statements = self._selected(
            "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ?, accepted_at = ?, reason = NULL,"
            " done_at = NULL WHERE state = 3",
            [now, now],
            delivery_ids,
            target,
        )

        def op(conn: sqlite3.Connection) -> int:
            total = 0
            for sql, params in statements:
                rows = conn.execute(sql + " RETURNING target, priority", params).fetchall()
                for row_target, priority in rows:
                    self._hint(row_target, priority, now)
                total += len(rows)
            return total

        return await self._executor.submit(op, offload=True)

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        statements = self._selected("DELETE FROM deliveries WHERE state = 3", [], delivery_ids, target)

        def op(conn: sqlite3.Connection) -> int:
            event_seqs: set[int] = set()
            total = 0
            for sql, params in statements:
                rows = conn.execute(sql + " RETURNING event_seq", params).fetchall()
                event_seqs.update(row[0] for row in rows)
                total += len(rows)
            self._drop_orphans(conn, event_seqs)
            return total

        return await self._executor.submit(op, offload=True)

    @staticmethod
    def _drop_orphans(conn: sqlite3.Connection, event_seqs: set[int]) -> None:
        # An event goes with its last delivery; until then it is kept, and so is its id for dedup.
        conn.executemany(
            "DELETE FROM events WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?)",
            [(seq, seq) for seq in event_seqs],
        )

    # -- maintenance -------------------------------------------------------------------------------

    async def expire(self, *, max_age_s: float) -> list[DeadLetter]:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            seqs = [
                row[0]
                for row in conn.execute(
                    "UPDATE deliveries SET state = 3, reason = ?, done_at = ?"
                    " WHERE state = 0 AND accepted_at < ? RETURNING seq",
                    (DeadLetterReason.EXPIRED.value, now, now - max_age_s),
                ).fetchall()
            ]
            return self._dead_letters_by_seq(conn, seqs)

        return await self._executor.submit(op, offload=True)

    async def dead_letter_target(self, target: str, *, reason: str) -> list[DeadLetter]:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            seqs = [
                row[0]
                for row in conn.execute(
                    "UPDATE deliveries SET state = 3, reason = ?, done_at = ?"
                    " WHERE state = 0 AND target = ? RETURNING seq",
                    (reason, now, target),
                ).fetchall()
            ]
            return self._dead_letters_by_seq(conn, seqs)

        return await self._executor.submit(op, offload=True)

    async def prune(self, *, retention_s: float) -> int:
        cutoff = self._clock() - retention_s

        def op(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM deliveries WHERE state = 2 AND done_at < ? RETURNING event_seq", (cutoff,)
            ).fetchall()
            self._drop_orphans(conn, {row[0] for row in deleted})
            return len(deleted)

        return await self._executor.submit(op, offload=True)

    async def reclaim(self) -> int:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"UPDATE deliveries SET state = 0, {schema.NO_LEASE}"  # noqa: S608 -- a constant
                " WHERE state = 1 AND ((lease_owner = ? AND lease_incarnation != ?) OR lease_until <= ?)"
                " RETURNING target, priority, next_attempt_at",
                (self.owner, self.incarnation, now),
            ).fetchall()
            for target, priority, next_at in rows:
                self._hint(target, priority, next_at)
            return len(rows)

        return await self._executor.submit(op, offload=True)

    async def stats(self) -> QueueStats:
        def op(conn: sqlite3.Connection) -> QueueStats:
            # One count per state: each is answered from that state's partial index.
            counts = {
                state: conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = ?", (state,)).fetchone()[0]
                for state in DeliveryState
            }
            by_target = dict(
                conn.execute("SELECT target, COUNT(*) FROM deliveries WHERE state = 0 GROUP BY target").fetchall()
            )
            oldest = conn.execute("SELECT MIN(accepted_at) FROM deliveries WHERE state = 0").fetchone()[0]
            return QueueStats(
                pending=counts[DeliveryState.PENDING],
                leased=counts[DeliveryState.LEASED],
                delivered=counts[DeliveryState.DELIVERED],
                dead=counts[DeliveryState.DEAD],
                pending_by_target=by_target,
                oldest_pending_at=oldest,
            )

        return await self._executor.submit(op, offload=True)

    # -- target state ------------------------------------------------------------------------------

    async def disable_target(self, name: str, *, reason: str) -> None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO disabled_targets (name, reason, at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                (name, reason, now),
            )

        await self._executor.submit(op)

    async def enable_target(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM disabled_targets WHERE name = ?", (name,)).rowcount > 0

        return await self._executor.submit(op)

    async def disabled_targets(self) -> dict[str, str]:
        def op(conn: sqlite3.Connection) -> dict[str, str]:
            return dict(conn.execute("SELECT name, reason FROM disabled_targets").fetchall())

        return await self._executor.submit(op)

    async def open_circuit(self, name: str, *, open_for_s: float) -> None:
        until = self._clock() + open_for_s

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO circuits (name, open_until, open_s) VALUES (?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET open_until = excluded.open_until, open_s = excluded.open_s",
                (name, until, open_for_s),
            )

        await self._executor.submit(op)

    async def close_circuit(self, name: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM circuits WHERE name = ?", (name,))

        await self._executor.submit(op)

    async def circuits(self) -> dict[str, SharedCircuit]:
        def op(conn: sqlite3.Connection) -> dict[str, SharedCircuit]:
            rows = conn.execute("SELECT name, open_until, open_s FROM circuits").fetchall()
            return {name: SharedCircuit(until, open_s) for name, until, open_s in rows}

        return await self._executor.submit(op)
