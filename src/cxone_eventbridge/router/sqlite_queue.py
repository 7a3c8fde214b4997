"""The embedded delivery queue: one SQLite file in WAL mode, written by one thread with group commit.

Durability: ``synchronous=FULL`` by default, so a committed ``put`` survives a crash of the machine, not
only of the process. Group commit keeps that from being the bottleneck: every operation (put, lease,
ack, ...) joins a list, and one commit loop takes whatever has queued up, runs it all in one transaction
(each operation in its own savepoint, so one failure fails only its caller) and commits once. Concurrent
callers therefore share one fsync instead of paying one each, and operations that arrive while a commit
is being synced wait for the next one.

Where the work runs: the hot operations' statements take microseconds each, so they run on the event
loop's thread; only ``COMMIT`` (the fsync, which releases the GIL) goes to the connection's one worker
thread. Handing every statement to a thread instead cost a GIL hand-off per statement and made an ack
wait milliseconds behind the busy event loop (measured: the delivery benchmark went from about 1,500 to
about 2,700 deliveries/s with this split). Operations that may scan or rewrite many rows (``expire``,
``prune``, ``stats``, ``dead_letters``, ``replay``, ``purge``, ``reclaim``) run their whole transaction
in the worker thread, so they never stall the loop. The connection is only ever used by one of the two
threads at a time: the commit loop waits for the worker before it starts the next transaction.

Fairness across priorities is *weighted fair queuing* (stride scheduling): priority ``p`` (0-9, lower
first) gets weight ``2 ** (9 - p)``. When several priorities have ready work, each lease hands out slots
in proportion to those weights, taking the lower number first on ties, so priority 0 gets 512 slots for
every one of priority 9, but priority 9 is never starved: a ready priority-9 delivery is served within
about 1,023 deliveries (512 + 256 + ... + 1) however much higher-priority work keeps arriving. Within one priority,
deliveries go FIFO by (``next_attempt_at``, insertion order). Each target's concurrency cap is applied
inside the lease, so a busy target never blocks another target's work (no head-of-line blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from cxone_eventbridge.exceptions import QueueClosedError, QueueError, QueueFullError
from cxone_eventbridge.router.queue import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    PutResult,
    QueuedEvent,
    QueueStats,
    delivery_id_for,
)

T = TypeVar("T")
_Outcome = tuple[Any, BaseException | None]
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_PENDING: Final = 0
_LEASED: Final = 1
_DELIVERED: Final = 2
_DEAD: Final = 3
_SQLITE_FULL: Final = 13
_MAX_BATCH_OPS: Final = 1024
_PUT_CHUNK: Final = 500  # events per multi-row INSERT: 4 parameters each, well under SQLite's limit
_MAX_LEASE: Final = 500  # keeps "seq IN (...)" well under SQLite's bound-parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    priority INTEGER NOT NULL,
    accepted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    target TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_incarnation TEXT,
    lease_until REAL,
    last_status INTEGER,
    last_error TEXT,
    reason TEXT,
    done_at REAL,
    UNIQUE (event_seq, target)
);
CREATE INDEX IF NOT EXISTS ix_ready ON deliveries (target, priority, next_attempt_at, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS ix_pending_age ON deliveries (accepted_at) WHERE state = 0;
CREATE INDEX IF NOT EXISTS ix_leased ON deliveries (lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS ix_delivered ON deliveries (done_at) WHERE state = 2;
CREATE INDEX IF NOT EXISTS ix_dead ON deliveries (done_at) WHERE state = 3;
CREATE TABLE IF NOT EXISTS disabled_targets (
    name TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
"""

_DEAD_LETTER_COLUMNS = (
    "d.delivery_id, e.event_id, d.target, d.priority, d.attempts, d.reason, d.last_status, d.last_error,"
    " d.accepted_at, d.done_at"
)


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    return DeadLetter(
        delivery_id=row[0],
        event_id=row[1],
        target=row[2],
        priority=row[3],
        attempts=row[4],
        reason=row[5] or "",
        last_status=row[6],
        last_error=row[7],
        accepted_at=row[8],
        dead_at=row[9],
    )


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def _translate(exc: sqlite3.Error) -> QueueError:
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "full" in str(exc):
        return QueueFullError(f"the delivery queue's storage is full: {exc}")
    return QueueError(f"the delivery queue's storage failed: {exc}")


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    offload: bool  # may touch many rows: its whole transaction runs in the worker thread


_ACK_SQL: Final = (
    # Unconditional: the receiver has it, whoever holds the lease now.
    "UPDATE deliveries SET state = 2, attempts = MAX(attempts, ?), done_at = ?, last_status = ?,"
    " lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL WHERE seq = ?"
)


class _AckGroup:
    """Acks that share one operation; each caller waits on its own future (so one cancelled caller
    cancels nothing for the others)."""

    __slots__ = ("rows", "waiters")

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, int | None, int]] = []
        self.waiters: list[asyncio.Future[None]] = []

    def run(self, conn: sqlite3.Connection) -> None:
        conn.executemany(_ACK_SQL, self.rows)

    def settle(self, done: asyncio.Future[None]) -> None:
        error = QueueClosedError("the delivery queue is closed") if done.cancelled() else done.exception()
        for waiter in self.waiters:
            if waiter.done():
                continue  # the caller was cancelled; the ack has still been applied (or not)
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)


@dataclass(slots=True)
class _Transaction:
    """One group commit's progress: each operation's outcome, and whether a COMMIT is owed."""

    outcomes: list[_Outcome]
    begun: bool
    any_failed: bool = False

    def failed(self, outcome: _Outcome) -> None:
        self.outcomes.append(outcome)
        self.any_failed = True


@dataclass(slots=True)
class _Scheduler:
    """Stride scheduling state across priorities; lives in the writer thread only."""

    weights: tuple[float, ...]
    passes: list[float] = field(default_factory=lambda: [0.0] * (MAX_PRIORITY + 1))
    virtual_time: float = 0.0
    backlogged: set[int] = field(default_factory=set)

    def stride(self, priority: int) -> float:
        return 1.0 / self.weights[priority]


class SQLiteQueue:
    """A :class:`~cxone_eventbridge.router.queue.DeliveryQueue` in one SQLite file.

    ``owner`` names this router (stable across restarts); ``incarnation`` is fresh on every start, so
    ``reclaim()`` can tell this process's leases from those of a previous, crashed one.
    ``max_size_bytes`` caps the database file: beyond it writes fail with ``QueueFullError``, as a full
    disk does.
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
    ) -> None:
        weights = (
            tuple(priority_weights)
            if priority_weights is not None
            else tuple(float(2 ** (MAX_PRIORITY - p)) for p in range(MAX_PRIORITY + 1))
        )
        if len(weights) != MAX_PRIORITY + 1 or any(w <= 0 for w in weights):
            raise ValueError("priority_weights must give 10 positive weights, one per priority 0-9")
        self.path = Path(path)
        self.owner = owner
        self.incarnation = incarnation or uuid.uuid4().hex
        self.synchronous: Synchronous = synchronous
        self._max_size_bytes = max_size_bytes
        self._scheduler = _Scheduler(weights)
        # (target, priority) -> a lower bound on the next_attempt_at of its pending rows. A superset of
        # the pairs that have pending rows, so a lease queries only pairs that may have work.
        self._hints: dict[tuple[str, int], float] = {}
        self._pending: list[_Op] = []
        self._acks: _AckGroup | None = None  # the acks not yet taken by the commit loop
        self._work = asyncio.Event()
        self._conn: sqlite3.Connection | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        loop = asyncio.get_running_loop()
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxeb-queue")
        try:
            self._conn = await loop.run_in_executor(worker, self._connect)
        except sqlite3.Error as exc:
            worker.shutdown(wait=False)
            raise _translate(exc) from exc
        self._worker = worker
        self._loop = loop
        self._committer = loop.create_task(self._commit_loop(self._conn, worker), name="cxeb-queue-commits")

    async def close(self) -> None:
        """Commit what was submitted before, then close the file."""
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._work.set()
            await self._committer
        if self._conn is not None and self._worker is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._conn.close)
            self._worker.shutdown(wait=False)

    async def __aenter__(self) -> SQLiteQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- group commit ------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used by the loop's thread and the worker in turn, never at once (see the module docstring).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        if self._max_size_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={max(1, self._max_size_bytes // page_size)}")
        conn.executescript(_SCHEMA)
        self._rebuild_hints(conn)
        return conn

    async def _commit_loop(self, conn: sqlite3.Connection, worker: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._pending:
                    if self._closed:
                        return
                    self._work.clear()
                    await self._work.wait()
                    continue
                ops = self._pending[:_MAX_BATCH_OPS]
                del self._pending[:_MAX_BATCH_OPS]
                self._acks = None  # later acks start a new group (this one may run in the worker thread)
                if any(op.offload for op in ops):
                    outcomes = await loop.run_in_executor(worker, self._transaction, conn, ops)
                else:
                    transaction = self._execute(conn, ops)
                    outcomes = await loop.run_in_executor(worker, self._commit, conn, transaction)
                _settle(ops, outcomes)
        finally:
            closed = QueueClosedError("the delivery queue is closed")
            _settle(self._pending, [(None, closed)] * len(self._pending))
            self._pending.clear()

    def _transaction(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[_Outcome]:
        return self._commit(conn, self._execute(conn, ops))

    def _execute(self, conn: sqlite3.Connection, ops: list[_Op]) -> _Transaction:
        """BEGIN, then each operation in its own savepoint; the COMMIT is left to ``_commit``."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return _Transaction([(None, _translate(exc))] * len(ops), begun=False)
        transaction = _Transaction([], begun=True)
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result = op.fn(conn)
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                transaction.failed((None, _translate(exc)))
            except Exception as exc:  # noqa: BLE001 -- the commit loop's boundary: a bug in one operation fails its caller, not every caller
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                transaction.failed((None, exc))
            else:
                conn.execute("RELEASE op")
                transaction.outcomes.append((result, None))
        return transaction

    def _commit(self, conn: sqlite3.Connection, transaction: _Transaction) -> list[_Outcome]:
        if not transaction.begun:
            return transaction.outcomes
        outcomes = transaction.outcomes
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [(None, _translate(exc))] * len(outcomes)
            transaction.any_failed = True
        if transaction.any_failed:
            # A rolled-back lease may have dropped hints for rows that are pending again.
            self._rebuild_hints(conn)
        return outcomes

    def _submit(self, fn: Callable[[sqlite3.Connection], T], *, offload: bool = False) -> asyncio.Future[T]:
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        if self._loop is None:
            raise QueueError("the delivery queue is not open; call open() first")
        if asyncio.get_running_loop() is not self._loop:
            raise QueueError("the delivery queue is used from another event loop than the one that opened it")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Op(fn, future, offload))
        self._work.set()
        return future

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

    # -- the interface -----------------------------------------------------------------------------

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        for event in events:
            if not MIN_PRIORITY <= event.priority <= MAX_PRIORITY:
                raise ValueError(f"priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, got {event.priority}")
        rows = [
            (event, [(target, delivery_id_for(event.event_id, target)) for target in dict.fromkeys(event.targets)])
            for event in events
        ]
        return await self._submit(lambda conn: self._put(conn, rows))

    def _put(self, conn: sqlite3.Connection, rows: list[tuple[QueuedEvent, list[tuple[str, str]]]]) -> list[PutResult]:
        results: list[PutResult] = [PutResult(event.event_id, ()) for event, _ in rows]
        matched = [(index, event, targets) for index, (event, targets) in enumerate(rows) if targets]
        # New events go in with one multi-row INSERT per chunk and their deliveries with one executemany
        # (a statement per event cost about 6 us more per event). An id already stored, or repeated in
        # this batch, is not inserted again; such events are handled one by one below.
        fresh: dict[str, int] = {}
        for start in range(0, len(matched), _PUT_CHUNK):
            chunk = matched[start : start + _PUT_CHUNK]
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
        conn.executemany(
            "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
            deliveries,
        )
        for index, event, targets in repeated:
            # The same event id again: its deliveries exist; add only targets it did not have yet.
            event_seq, priority, accepted_at = conn.execute(
                "SELECT seq, priority, accepted_at FROM events WHERE event_id = ?", (event.event_id,)
            ).fetchone()
            created = []
            for target, did in targets:
                cursor = conn.execute(
                    "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (event_seq, target) DO NOTHING",
                    (event_seq, did, target, priority, accepted_at, accepted_at),
                )
                if cursor.rowcount == 1:
                    created.append(target)
                    self._hint(target, priority, accepted_at)
            results[index] = PutResult(event.event_id, tuple(created))
        return results

    async def lease(self, *, capacity: Mapping[str, int], limit: int, now: float, lease_s: float) -> list[Delivery]:
        if limit <= 0:
            return []
        caps = {target: n for target, n in capacity.items() if n > 0}
        limit = min(limit, _MAX_LEASE)
        return await self._submit(lambda conn: self._lease(conn, caps, limit, now, lease_s))

    def _lease(
        self, conn: sqlite3.Connection, caps: dict[str, int], limit: int, now: float, lease_s: float
    ) -> list[Delivery]:
        for target, priority, next_at in conn.execute(
            "UPDATE deliveries SET state = 0, lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL"
            " WHERE state = 1 AND lease_until <= ? RETURNING target, priority, next_attempt_at",
            (now,),
        ).fetchall():
            self._hint(target, priority, next_at)
        if not caps:
            return []
        # Candidates per priority: the ready rows of every (target, priority) that may have work.
        levels: dict[int, list[tuple[float, int, str]]] = {}
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
            if rows:
                levels.setdefault(priority, []).extend((next_at, seq, target) for next_at, seq in rows)
        chosen = self._choose(levels, caps, limit)
        taken: dict[tuple[str, int], int] = {}
        for _, _, target, priority in chosen:
            taken[(target, priority)] = taken.get((target, priority), 0) + 1
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
        seqs = [seq for _, seq, _, _ in chosen]
        lease_until = now + lease_s
        marks = _placeholders(len(seqs))
        conn.execute(
            f"UPDATE deliveries SET state = 1, lease_owner = ?, lease_incarnation = ?, lease_until = ?"  # noqa: S608 -- only placeholders are interpolated
            f" WHERE seq IN ({marks})",
            (self.owner, self.incarnation, lease_until, *seqs),
        )
        rows = conn.execute(
            "SELECT d.seq, d.delivery_id, e.event_id, d.target, d.priority, e.body, d.attempts, d.accepted_at"  # noqa: S608 -- only placeholders are interpolated
            f" FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq IN ({marks})",
            seqs,
        ).fetchall()
        by_seq = {row[0]: row for row in rows}
        return [
            Delivery(
                key=seq,
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

    def _choose(
        self, levels: dict[int, list[tuple[float, int, str]]], caps: dict[str, int], limit: int
    ) -> list[tuple[float, int, str, int]]:
        """Stride scheduling across priorities, FIFO within one, each target within its cap."""
        scheduler = self._scheduler
        remaining = dict(caps)
        positions = dict.fromkeys(levels, 0)
        for candidates in levels.values():
            candidates.sort()
        for priority in levels:
            if priority not in scheduler.backlogged:
                # A priority that was idle does not bank credit for the time it had nothing to send.
                scheduler.passes[priority] = max(scheduler.passes[priority], scheduler.virtual_time)
        scheduler.backlogged = set(levels)
        chosen: list[tuple[float, int, str, int]] = []
        active = set(levels)
        while active and len(chosen) < limit:
            # Serve the smallest virtual finish time (start + stride), as weighted fair queuing does.
            priority = min(active, key=lambda p: (scheduler.passes[p] + scheduler.stride(p), p))
            candidates = levels[priority]
            index = positions[priority]
            while index < len(candidates) and remaining[candidates[index][2]] <= 0:
                index += 1
            if index == len(candidates):
                active.discard(priority)
                continue
            next_at, seq, target = candidates[index]
            positions[priority] = index + 1
            remaining[target] -= 1
            chosen.append((next_at, seq, target, priority))
            scheduler.virtual_time = scheduler.passes[priority]
            scheduler.passes[priority] += scheduler.stride(priority)
        return chosen

    async def ack(self, delivery: Delivery, *, now: float, status: int | None = None) -> None:
        # Acks come one per delivery, many per commit: they join one statement (an executemany in one
        # savepoint) instead of an operation each. The group stays open until the commit loop takes it.
        group = self._acks
        if group is None:
            group = self._acks = _AckGroup()
            self._submit(group.run).add_done_callback(group.settle)
        assert self._loop is not None  # _submit checked it
        waiter: asyncio.Future[None] = self._loop.create_future()
        group.rows.append((delivery.attempts + 1, now, status, delivery.key))
        group.waiters.append(waiter)
        await waiter

    async def reschedule(
        self,
        delivery: Delivery,
        *,
        next_attempt_at: float,
        now: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE deliveries SET state = 0, attempts = ?, next_attempt_at = ?, last_status = ?,"
                " last_error = ?, lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL"
                " WHERE seq = ? AND state = 1 AND lease_owner = ? AND lease_incarnation = ?",
                (
                    delivery.attempts + 1,
                    next_attempt_at,
                    last_status,
                    last_error,
                    delivery.key,
                    self.owner,
                    self.incarnation,
                ),
            )
            if cursor.rowcount:
                self._hint(delivery.target, delivery.priority, next_attempt_at)

        await self._submit(op)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        keys = [d.key for d in deliveries]

        def op(conn: sqlite3.Connection) -> None:
            rows = conn.execute(
                "UPDATE deliveries SET state = 0, lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL"  # noqa: S608 -- only placeholders are interpolated
                f" WHERE seq IN ({_placeholders(len(keys))}) AND state = 1 AND lease_owner = ?"
                " AND lease_incarnation = ? RETURNING target, priority, next_attempt_at",
                (*keys, self.owner, self.incarnation),
            ).fetchall()
            for target, priority, next_at in rows:
                self._hint(target, priority, next_at)

        await self._submit(op)

    async def dead_letter(
        self,
        delivery: Delivery,
        *,
        reason: str,
        now: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET state = 3, attempts = ?, reason = ?, done_at = ?, last_status = ?,"
                " last_error = ?, lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL"
                " WHERE seq = ? AND state = 1 AND lease_owner = ? AND lease_incarnation = ?",
                (
                    delivery.attempts + 1,
                    reason,
                    now,
                    last_status,
                    last_error,
                    delivery.key,
                    self.owner,
                    self.incarnation,
                ),
            )

        await self._submit(op)

    async def expire(self, *, now: float, max_age_s: float) -> list[DeadLetter]:
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

        return await self._submit(op, offload=True)

    @staticmethod
    def _dead_letters_by_seq(conn: sqlite3.Connection, seqs: list[int]) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for start in range(0, len(seqs), _MAX_LEASE):
            chunk = seqs[start : start + _MAX_LEASE]
            rows = conn.execute(
                f"SELECT {_DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608 -- only placeholders are interpolated
                f" WHERE d.seq IN ({_placeholders(len(chunk))}) ORDER BY d.seq",
                chunk,
            ).fetchall()
            letters.extend(_dead_letter(row) for row in rows)
        return letters

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            where = "d.state = 3" + (" AND d.target = ?" if target is not None else "")
            params: tuple[Any, ...] = (target, limit) if target is not None else (limit,)
            rows = conn.execute(
                f"SELECT {_DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608 -- fixed SQL text, values are bound
                f" WHERE {where} ORDER BY d.done_at DESC, d.seq DESC LIMIT ?",
                params,
            ).fetchall()
            return [_dead_letter(row) for row in rows]

        return await self._submit(op, offload=True)

    async def replay(self, *, now: float, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        ids = list(delivery_ids) if delivery_ids is not None else None

        def op(conn: sqlite3.Connection) -> int:
            # A replay starts over: a fresh retry budget and a fresh age, so it is not expired at once.
            sql = (
                "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ?, accepted_at = ?, reason = NULL,"
                " done_at = NULL WHERE state = 3"
            )
            params: list[Any] = [now, now]
            if target is not None:
                sql += " AND target = ?"
                params.append(target)
            total = 0
            chunks: list[list[str] | None] = (
                [ids[i : i + _MAX_LEASE] for i in range(0, len(ids), _MAX_LEASE)] if ids is not None else [None]
            )
            for chunk in chunks:
                chunk_sql, chunk_params = sql, list(params)
                if chunk is not None:
                    chunk_sql += f" AND delivery_id IN ({_placeholders(len(chunk))})"
                    chunk_params.extend(chunk)
                rows = conn.execute(chunk_sql + " RETURNING target, priority", chunk_params).fetchall()
                for row_target, priority in rows:
                    self._hint(row_target, priority, now)
                total += len(rows)
            return total

        return await self._submit(op, offload=True)

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        ids = list(delivery_ids) if delivery_ids is not None else None

        def op(conn: sqlite3.Connection) -> int:
            sql = "DELETE FROM deliveries WHERE state = 3"
            params: list[Any] = []
            if target is not None:
                sql += " AND target = ?"
                params.append(target)
            chunks: list[list[str] | None] = (
                [ids[i : i + _MAX_LEASE] for i in range(0, len(ids), _MAX_LEASE)] if ids is not None else [None]
            )
            event_seqs: set[int] = set()
            total = 0
            for chunk in chunks:
                chunk_sql, chunk_params = sql, list(params)
                if chunk is not None:
                    chunk_sql += f" AND delivery_id IN ({_placeholders(len(chunk))})"
                    chunk_params.extend(chunk)
                rows = conn.execute(chunk_sql + " RETURNING event_seq", chunk_params).fetchall()
                event_seqs.update(row[0] for row in rows)
                total += len(rows)
            conn.executemany(
                "DELETE FROM events WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?)",
                [(seq, seq) for seq in event_seqs],
            )
            return total

        return await self._submit(op, offload=True)

    async def stats(self) -> QueueStats:
        def op(conn: sqlite3.Connection) -> QueueStats:
            counts = [
                conn.execute("SELECT COUNT(*) FROM deliveries WHERE state = ?", (state,)).fetchone()[0]
                for state in (_PENDING, _LEASED, _DELIVERED, _DEAD)
            ]
            by_target = dict(
                conn.execute("SELECT target, COUNT(*) FROM deliveries WHERE state = 0 GROUP BY target").fetchall()
            )
            oldest = conn.execute("SELECT MIN(accepted_at) FROM deliveries WHERE state = 0").fetchone()[0]
            return QueueStats(
                pending=counts[0],
                leased=counts[1],
                delivered=counts[2],
                dead=counts[3],
                pending_by_target=by_target,
                oldest_pending_at=oldest,
            )

        return await self._submit(op, offload=True)

    async def prune(self, *, now: float, retention_s: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM deliveries WHERE state = 2 AND done_at < ? RETURNING event_seq", (now - retention_s,)
            ).fetchall()
            # An event goes with its last delivery; until then it is kept, and so is its id for dedup.
            conn.executemany(
                "DELETE FROM events WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?)",
                [(seq, seq) for seq in {row[0] for row in deleted}],
            )
            return len(deleted)

        return await self._submit(op, offload=True)

    async def reclaim(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "UPDATE deliveries SET state = 0, lease_owner = NULL, lease_incarnation = NULL, lease_until = NULL"
                " WHERE state = 1 AND lease_owner = ? AND lease_incarnation != ?"
                " RETURNING target, priority, next_attempt_at",
                (self.owner, self.incarnation),
            ).fetchall()
            for target, priority, next_at in rows:
                self._hint(target, priority, next_at)
            return len(rows)

        return await self._submit(op, offload=True)

    async def disable_target(self, name: str, *, reason: str, now: float) -> None:
        """Remember that a target is disabled (410 Gone); its deliveries wait until it is enabled."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO disabled_targets (name, reason, at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                (name, reason, now),
            )

        await self._submit(op)

    async def enable_target(self, name: str) -> bool:
        """Forget that a target is disabled; True when it was."""

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM disabled_targets WHERE name = ?", (name,)).rowcount > 0

        return await self._submit(op)

    async def disabled_targets(self) -> dict[str, str]:
        """Disabled targets and why."""

        def op(conn: sqlite3.Connection) -> dict[str, str]:
            return dict(conn.execute("SELECT name, reason FROM disabled_targets").fetchall())

        return await self._submit(op)


def _settle(ops: list[_Op], outcomes: list[_Outcome]) -> None:
    for op, (result, error) in zip(ops, outcomes, strict=True):
        if op.future.done():
            continue  # the caller was cancelled; the operation has still been applied
        if error is not None:
            op.future.set_exception(error)
        else:
            op.future.set_result(result)
