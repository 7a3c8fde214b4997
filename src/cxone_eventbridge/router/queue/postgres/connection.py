"""The PostgreSQL queue's connections: the pool, migrations on open, the LISTEN wake-ups, the clock.

Every job of the queue (``work_cycle``, ``dead_letters``, ``maintenance``, ``target_state``) builds on
:class:`PostgresConnection`: it borrows a pooled connection through ``_connection()`` (driver errors
converted once, here, into the queue's exceptions) and takes its time from ``_now()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final, TypedDict, Unpack

import asyncpg

from cxone_eventbridge.exceptions import QueueClosedError, QueueError, QueueFullError, QueueUnavailableError
from cxone_eventbridge.router.queue.migrations import latest_version, log_migrated, pending_migrations
from cxone_eventbridge.router.queue.postgres import schema

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_MIGRATION_LOCK: Final = 0x63786562  # "cxeb": one migrating router at a time
_RECONNECT_MAX_S: Final = 5.0


def translate(exc: BaseException) -> QueueError:
    """The queue's exception for a driver or socket error."""
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


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: nothing to undo. The queue's statements change no
    session state (``SET LOCAL`` ends with its transaction; no session LISTEN, advisory lock or cursor), and
    an open transaction is rolled back by the pool before this. asyncpg's default reset is a round trip of
    four statements per borrow (52 of the 175 statements per 1,000 deliveries end to end)."""


class ClockOffset:
    """This process's clock minus the database's, estimated as NTP does: each sample (the local time an
    answer was read minus the database's clock in it) is the true offset plus however late the answer was
    read (network, a busy event loop), never less; so the smallest recent sample is the best estimate.
    Recent: the last ``window`` samples, so that a clock stepped on either machine is followed."""

    def __init__(self, window: int = 64) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def sample(self, local: float, remote: float) -> float:
        """Record one reading; the current estimate."""
        self._samples.append(local - remote)
        return min(self._samples)


class ConnectionOptions(TypedDict, total=False):
    """Where a queue's tables are, who uses them, and how: see :class:`.backend.PostgresQueue`."""

    schema: str  # default "cxeb"
    owner: str  # default "local"
    incarnation: str | None  # default: a fresh one per run
    migrate: bool  # default False
    pool_size: int  # default 4
    clock: Callable[[], float] | None  # default: the database's now()
    connect_timeout_s: float  # default 5
    keep_unmatched: bool  # default False: store events that matched no target too (the archive keeps them)


class PostgresConnection:
    """Where a PostgreSQL queue's tables are and how it reaches them; see :class:`.backend.PostgresQueue`."""

    def __init__(self, dsn: str, **options: Unpack[ConnectionOptions]) -> None:
        schema = options.get("schema", "cxeb")
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema must be a lower-case SQL identifier of at most 41 characters")
        self.schema = schema
        self.keep_unmatched = options.get("keep_unmatched", False)
        self.owner = options.get("owner", "local")
        self.incarnation = options.get("incarnation") or uuid.uuid4().hex
        self.schema_version: int | None = None
        self.channel = f"cxeb_ready_{schema}"
        self.application_name = f"cxeb-router:{schema}"  # what pg_stat_activity shows for its connections
        self._dsn = dsn
        self._migrate = options.get("migrate", False)
        self._pool_size = options.get("pool_size", 4)
        self._clock = options.get("clock")
        self._connect_timeout_s = options.get("connect_timeout_s", 5.0)
        self._pool: asyncpg.Pool | None = None
        self._fast_pool: asyncpg.Pool | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listen_task: asyncio.Task[None] | None = None
        self._owner_lock: asyncpg.Connection | None = None  # maintenance.py: held from the first reclaim
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r}, owner={self.owner!r})"  # never the DSN

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        try:
            await self._apply_migrations()
            self._pool = await self._create_pool(durable=True)
            self._fast_pool = await self._create_pool(durable=False)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise translate(exc) from exc
        self._listen_task = asyncio.create_task(self._listen(), name="cxeb-queue-listen")

    async def close(self) -> None:
        if self._closed:
            return
        await self._finish_writes()  # before closing: buffered writes still need their connections
        self._closed = True
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        for pool in (self._pool, self._fast_pool):
            if pool is not None:
                await pool.close()
        if self._owner_lock is not None and not self._owner_lock.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._owner_lock.close()  # frees the owner name for this router's successor

    async def _create_pool(self, *, durable: bool) -> asyncpg.Pool:
        settings = {
            "search_path": self.schema,
            "application_name": self.application_name,
            # Plan each statement once per connection, for a table of any size. Planning every execution
            # (custom plans) cost 100-400 us of database CPU per statement, whatever the rows it touched:
            # most of a small lease's cost. A generic plan made while the tables are small would scan them
            # whole (a sequential scan and hash join, kept while they grow), so sequential scans are off:
            # every statement of the queue has an index to follow (the schema's), and with none the
            # planner still scans. Measured (benchmarks/bench_queue.py, docs/delivery.md): database CPU
            # per delivery of a put+lease+ack of 16 from 133 to 87 us, of 128 from 61 to 47 us.
            "plan_cache_mode": "force_generic_plan",
            "enable_seqscan": "off",
        }
        if not durable:
            # Commits on these connections return before their WAL reaches the disk (it follows within
            # about 3 x wal_writer_delay). Only lease bookkeeping runs here, whose loss in a database crash
            # means a redelivery, never a lost event: see docs/delivery.md, "What a database crash can undo".
            settings["synchronous_commit"] = "off"
        return await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._connect_timeout_s,
            command_timeout=60,
            server_settings=settings,
            reset=_keep_session,
        )

    async def _finish_writes(self) -> None:
        """Complete writes still buffered when the queue closes (a job that buffers writes overrides this)."""

    async def _apply_migrations(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        try:
            current = await self._version(conn)
            pending = pending_migrations(current, schema.MIGRATIONS, backend="PostgreSQL", migrate=self._migrate)
            if pending:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    current = await self._version(conn)  # another router may have migrated meanwhile
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.execute(f'SET LOCAL search_path = "{self.schema}"')
                    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                    for migration in pending_migrations(current, schema.MIGRATIONS, backend="PostgreSQL", migrate=True):
                        for statement in migration.statements:
                            await conn.execute(statement)
                    await conn.execute("DELETE FROM schema_version")
                    await conn.execute("INSERT INTO schema_version VALUES ($1)", latest_version(schema.MIGRATIONS))
                log_migrated("PostgreSQL", f"schema {self.schema}", current, latest_version(schema.MIGRATIONS))
            self.schema_version = max(current, latest_version(schema.MIGRATIONS))
        finally:
            await conn.close()

    async def _version(self, conn: asyncpg.Connection) -> int:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{self.schema}".schema_version')
        if not exists:
            return 0
        version = await conn.fetchval(f'SELECT max(version) FROM "{self.schema}".schema_version')  # noqa: S608 -- a checked identifier
        return int(version or 0)

    @contextlib.asynccontextmanager
    async def _connection(self, *, durable: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; ``durable=False`` for lease bookkeeping whose commit need not wait for the disk."""
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        pool = self._pool if durable else self._fast_pool
        if pool is None:
            raise QueueError("the delivery queue is not open; call open() first")
        try:
            async with pool.acquire() as conn:
                yield conn
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,  # a connection the server dropped mid-operation
        ) as exc:
            raise translate(exc) from exc

    def _now(self) -> float | None:
        """The injected time, or None: the SQL then takes the database's ``now()``."""
        return self._clock() if self._clock is not None else None

    def _local(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    # -- wake-ups ----------------------------------------------------------------------------------

    async def _notify(self, conn: asyncpg.Connection) -> None:
        """Wake every router listening on this queue (delivered when the caller's transaction commits)."""
        await conn.execute("SELECT pg_notify($1, '')", self.channel)

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
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,  # the server ended the session (a restart) just before LISTEN
            ) as exc:
                log.warning("cannot LISTEN on the queue's database (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
