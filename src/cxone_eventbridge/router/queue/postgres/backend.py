"""The shared delivery queue: PostgreSQL, for any number of routers on any number of machines.

Driver: asyncpg (binary protocol, prepared statements cached per connection; the queue-only cycle in
``benchmarks/bench_queue.py`` measured it against psycopg 3, see docs/delivery.md).

How it keeps every semantic of the embedded queue across routers:

- ``put`` is one transaction (events, then their deliveries, then a ``NOTIFY``), so an event and its
  deliveries commit together; every router ``LISTEN``s and leases at once instead of at its next poll.
- ``lease`` locks ready candidates with ``FOR UPDATE SKIP LOCKED`` (routers never wait on each other's
  rows), lets the shared :class:`~..scheduler.FairScheduler` choose, and claims the chosen ones under a
  fresh lease token. A limited target's ``target_state`` row is locked for the lease, so its leases in
  flight are counted and its send slots taken by one router at a time.
- Time is the database's ``now()``: one clock for every machine. The times on a returned
  :class:`~..records.Delivery` are converted to this process's clock.
- A router that dies leaves leases that end; ``reclaim`` (every router's housekeeping) makes them
  pending again, and the others deliver them. Live routers renew the leases of attempts in flight.
- The database going away surfaces as :class:`~cxone_eventbridge.exceptions.QueueUnavailableError`;
  the pool reconnects on the next operation and the listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Final

import asyncpg

from cxone_eventbridge.exceptions import QueueClosedError, QueueError, QueueFullError, QueueUnavailableError
from cxone_eventbridge.router.queue.migrations import latest_version, log_migrated, pending_migrations
from cxone_eventbridge.router.queue.postgres import schema as sql
from cxone_eventbridge.router.queue.protocols import NO_LIMITS
from cxone_eventbridge.router.queue.records import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    PutResult,
    QueuedEvent,
    QueueStats,
    SharedCircuit,
    TargetLimits,
    delivery_id_for,
)
from cxone_eventbridge.router.queue.scheduler import Candidate, FairScheduler, limited_caps, mark_probes, rate_slots

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_MIGRATION_LOCK: Final = 0x63786562  # "cxeb": one migrating router at a time
_RECONNECT_MAX_S: Final = 5.0


def _translate(exc: BaseException) -> QueueError:
    if isinstance(exc, asyncpg.DiskFullError | asyncpg.OutOfMemoryError):
        return QueueFullError(f"the delivery queue's database is full: {type(exc).__name__}")
    if isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    ):
        return QueueUnavailableError(f"the delivery queue's database cannot be reached: {type(exc).__name__}")
    return QueueError(f"the delivery queue's database failed: {type(exc).__name__}: {exc}")


class PostgresQueue:
    """A :class:`~cxone_eventbridge.router.queue.DeliveryQueue` in a PostgreSQL schema, shared by routers.

    ``dsn`` is a ``postgresql://`` URL (never logged: it may carry a password); ``schema`` the schema the
    queue's tables live in. ``owner`` names this router (stable across restarts), ``incarnation`` this
    run. ``migrate`` applies missing schema steps on open; otherwise a database behind this code is
    refused with a message naming ``cxeb router migrate``. ``clock`` replaces the database's clock (tests).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "cxeb",
        owner: str = "local",
        incarnation: str | None = None,
        migrate: bool = False,
        pool_size: int = 4,
        priority_weights: Sequence[float] | None = None,
        clock: Callable[[], float] | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema must be a lower-case SQL identifier of at most 41 characters")
        self.schema = schema
        self.owner = owner
        self.incarnation = incarnation or uuid.uuid4().hex
        self.schema_version: int | None = None
        self.channel = f"cxeb_ready_{schema}"
        self.application_name = f"cxeb-router:{schema}"  # what pg_stat_activity shows for its connections
        self._dsn = dsn
        self._migrate = migrate
        self._pool_size = pool_size
        self._clock = clock
        self._connect_timeout_s = connect_timeout_s
        self._scheduler = FairScheduler(priority_weights)
        self._pool: asyncpg.Pool | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listen_task: asyncio.Task[None] | None = None
        self._acks: list[tuple[int, str, int, int | None, asyncio.Future[None]]] = []
        self._ack_task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresQueue(schema={self.schema!r}, owner={self.owner!r})"  # never the DSN

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        try:
            await self._apply_migrations()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout_s,
                command_timeout=60,
                server_settings={"search_path": self.schema, "application_name": self.application_name},
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _translate(exc) from exc
        self._listen_task = asyncio.create_task(self._listen(), name="cxeb-queue-listen")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ack_task is not None:
            with contextlib.suppress(Exception):
                await self._ack_task
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        if self._pool is not None:
            await self._pool.close()

    async def __aenter__(self) -> PostgresQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _apply_migrations(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        try:
            current = await self._version(conn)
            pending = pending_migrations(current, sql.MIGRATIONS, backend="PostgreSQL", migrate=self._migrate)
            if pending:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    current = await self._version(conn)  # another router may have migrated meanwhile
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.execute(f'SET LOCAL search_path = "{self.schema}"')
                    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                    for migration in pending_migrations(current, sql.MIGRATIONS, backend="PostgreSQL", migrate=True):
                        for statement in migration.statements:
                            await conn.execute(statement)
                    await conn.execute("DELETE FROM schema_version")
                    await conn.execute("INSERT INTO schema_version VALUES ($1)", latest_version(sql.MIGRATIONS))
                log_migrated("PostgreSQL", f"schema {self.schema}", current, latest_version(sql.MIGRATIONS))
            self.schema_version = max(current, latest_version(sql.MIGRATIONS))
        finally:
            await conn.close()

    async def _version(self, conn: asyncpg.Connection) -> int:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{self.schema}".schema_version')
        if not exists:
            return 0
        version = await conn.fetchval(f'SELECT max(version) FROM "{self.schema}".schema_version')  # noqa: S608 -- a checked identifier
        return int(version or 0)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        if self._pool is None:
            raise QueueError("the delivery queue is not open; call open() first")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,  # a connection the server dropped mid-operation
        ) as exc:
            raise _translate(exc) from exc

    def _now(self) -> float | None:
        """The injected time, or None: the SQL then takes the database's ``now()``."""
        return self._clock() if self._clock is not None else None

    def _local(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    # -- wake-ups ----------------------------------------------------------------------------------

    def on_ready(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _wake(self, *_args: object) -> None:
        for callback in self._listeners:
            callback()

    async def _listen(self) -> None:
        """Hold a LISTEN connection; reconnect with backoff whenever it is lost."""
        delay = 0.1
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._connect_timeout_s,
                    server_settings={"application_name": self.application_name},
                )
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._wake)
                delay = 0.1
                self._wake()  # work may have arrived while nobody listened
                await lost.wait()
                log.warning("the queue's LISTEN connection was lost; reconnecting")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot LISTEN on the queue's database (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    # -- the work cycle ----------------------------------------------------------------------------

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        for event in events:
            if not MIN_PRIORITY <= event.priority <= MAX_PRIORITY:
                raise ValueError(f"priority must be {MIN_PRIORITY}-{MAX_PRIORITY}, got {event.priority}")
        matched = [e for e in events if e.targets]
        if not matched:
            return [PutResult(e.event_id, ()) for e in events]
        event_ids, targets, dids = [], [], []
        for event in matched:
            for target in dict.fromkeys(event.targets):
                event_ids.append(event.event_id)
                targets.append(target)
                dids.append(delivery_id_for(event.event_id, target))
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
        for event in events:
            mine = []
            for target in dict.fromkeys(event.targets):
                did = delivery_id_for(event.event_id, target)
                if did in created:
                    created.discard(did)  # an id repeated in the batch: its first occurrence created it
                    mine.append(target)
            results.append(PutResult(event.event_id, tuple(mine)))
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
                await conn.execute("SELECT pg_notify($1, '')", self.channel)
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
        async with self._connection() as conn, conn.transaction():
            clock_row = await conn.fetchrow(sql.LEASE_START, self._now())
            assert clock_row is not None  # one row, always
            now: float = clock_row[0]
            for name in clock_row[1]:
                wanted.pop(name, None)
            circuits = {name: until for name, until in zip(clock_row[2], clock_row[3], strict=True) if name in wanted}
            # Limited targets and those with a shared circuit are leased by one router at a time.
            limited = sorted(t for t in wanted if ((lim := limits.get(t)) is not None and lim.limited) or t in circuits)
            leased: dict[str, int] = {}
            next_slot_at: dict[str, float | None] = {}
            if limited:
                await conn.execute(sql.TARGET_ROWS, limited)
                await conn.execute(sql.LOCK_LIMITED, limited)
                for name, slot, count in await conn.fetch(sql.LIMITED_STATE, limited, now):
                    leased[name], next_slot_at[name] = count, slot
            caps = limited_caps(
                wanted, limits, leased=leased, next_slot_at=next_slot_at, now=now, circuit_open_until=circuits
            )
            if not caps:
                return []
            rows = await conn.fetch(sql.CANDIDATES, now, list(caps), [min(cap, limit) for cap in caps.values()])
            candidates = [Candidate(row[3], row[0], row[1], row[2], row[0]) for row in rows]
            chosen = self._scheduler.choose(candidates, caps, limit)
            if not chosen:
                return []
            token = uuid.uuid4().hex
            claimed = await conn.fetch(
                sql.CLAIM, now, [c.key for c in chosen], self.owner, self.incarnation, token, lease_s
            )
            by_id = {row[0]: row for row in claimed}
            offset = self._local() - now
            deliveries = [
                Delivery(
                    key=str(row[0]),
                    lease_token=token,
                    delivery_id=row[1],
                    event_id=row[2],
                    target=row[3],
                    priority=row[4],
                    body=bytes(row[5]),
                    attempts=row[6],
                    accepted_at=row[7],
                    lease_until=row[8] + offset,
                )
                for c in chosen
                if (row := by_id.get(c.key)) is not None
            ]
            paced = await self._pace(
                conn, deliveries=deliveries, limits=limits, next_slot_at=next_slot_at, now=now, offset=offset
            )
            return mark_probes(paced, circuits, now)

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
        async with self._connection() as conn:
            rows = await conn.fetch(
                sql.RENEW, self._now(), [int(d.key) for d in deliveries], [d.lease_token for d in deliveries], lease_s
            )
        local = self._local()
        held = {str(row[0]): row[1] + local - row[2] for row in rows}  # in this process's clock
        return [replace(d, lease_until=held[d.key]) for d in deliveries if d.key in held]

    async def ack(self, delivery: Delivery, *, status: int | None = None) -> None:
        # Acks come one per delivery, many at once: they join one statement per round trip.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks.append((int(delivery.key), delivery.lease_token, delivery.attempts + 1, status, waiter))
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.create_task(self._flush_acks())
        await waiter

    async def _flush_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            error: BaseException | None = None
            try:
                async with self._connection() as conn:
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
        async with self._connection() as conn, conn.transaction():
            await conn.execute(sql.RELEASE, [int(d.key) for d in deliveries], [d.lease_token for d in deliveries])
            await conn.execute("SELECT pg_notify($1, '')", self.channel)

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

    # -- dead letters ------------------------------------------------------------------------------

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                sql.DEAD_LETTERS,
                target,
                limit,
            )
        return [DeadLetter.from_row(row) for row in rows]

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        # A replay starts over: a fresh retry budget and a fresh age, so it is not expired at once.
        async with self._connection() as conn, conn.transaction():
            result = await conn.execute(
                sql.REPLAY,
                self._now(),
                target,
                list(delivery_ids) if delivery_ids is not None else None,
            )
            count = int(result.split()[-1])
            if count:
                await conn.execute("SELECT pg_notify($1, '')", self.channel)
        return count

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM deliveries WHERE state = 3 AND ($1::text IS NULL OR target = $1)"
                " AND ($2::text[] IS NULL OR delivery_id = ANY($2::text[])) RETURNING event_seq",
                target,
                list(delivery_ids) if delivery_ids is not None else None,
            )
            await conn.execute(sql.DROP_ORPHANS, list({row[0] for row in rows}))
        return len(rows)

    # -- maintenance -------------------------------------------------------------------------------

    async def expire(self, *, max_age_s: float) -> list[DeadLetter]:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.EXPIRE, self._now(), max_age_s, DeadLetterReason.EXPIRED.value)
        return sorted((DeadLetter.from_row(row) for row in rows), key=lambda d: (d.accepted_at, d.delivery_id))

    async def dead_letter_target(self, target: str, *, reason: str) -> list[DeadLetter]:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.DEAD_LETTER_TARGET, self._now(), target, reason)
        return sorted((DeadLetter.from_row(row) for row in rows), key=lambda d: (d.accepted_at, d.delivery_id))

    async def prune(self, *, retention_s: float) -> int:
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                sql.PRUNE,
                self._now(),
                retention_s,
            )
            # An event goes with its last delivery; until then it is kept, and so is its id for dedup.
            await conn.execute(sql.DROP_ORPHANS, list({row[0] for row in rows}))
        return len(rows)

    async def reclaim(self) -> int:
        async with self._connection() as conn, conn.transaction():
            result = await conn.execute(sql.RECLAIM, self._now(), self.owner, self.incarnation)
            count = int(result.split()[-1])
            if count:
                await conn.execute("SELECT pg_notify($1, '')", self.channel)
        return count

    async def stats(self) -> QueueStats:
        async with self._connection() as conn:
            counts = await conn.fetchrow(sql.STATS)
            by_target = await conn.fetch("SELECT target, count(*) FROM deliveries WHERE state = 0 GROUP BY target")
        assert counts is not None  # one row, always
        return QueueStats(
            pending=counts[0],
            leased=counts[1],
            delivered=counts[2],
            dead=counts[3],
            pending_by_target={row[0]: row[1] for row in by_target},
            oldest_pending_at=counts[4],
        )

    # -- target state ------------------------------------------------------------------------------

    async def disable_target(self, name: str, *, reason: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                sql.DISABLE,
                self._now(),
                name,
                reason,
            )

    async def enable_target(self, name: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            was = await conn.fetchval(
                "UPDATE target_state SET disabled_reason = NULL, disabled_at = NULL"
                " WHERE name = $1 AND disabled_reason IS NOT NULL RETURNING name",
                name,
            )
            if was is not None:
                await conn.execute("SELECT pg_notify($1, '')", self.channel)
        return was is not None

    async def disabled_targets(self) -> dict[str, str]:
        async with self._connection() as conn:
            return {row[0]: row[1] for row in await conn.fetch(sql.DISABLED)}

    async def open_circuit(self, name: str, *, open_for_s: float) -> None:
        async with self._connection() as conn:
            await conn.execute(sql.OPEN_CIRCUIT, self._now(), name, open_for_s)

    async def close_circuit(self, name: str) -> None:
        async with self._connection() as conn, conn.transaction():
            closed = await conn.fetchval(
                "UPDATE target_state SET circuit_open_until = NULL, circuit_open_s = NULL"
                " WHERE name = $1 AND circuit_open_until IS NOT NULL RETURNING name",
                name,
            )
            if closed is not None:
                await conn.execute("SELECT pg_notify($1, '')", self.channel)

    async def circuits(self) -> dict[str, SharedCircuit]:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.CIRCUITS, self._now())
        local = self._local()
        return {row[0]: SharedCircuit(row[1] + local - row[3], row[2]) for row in rows}
