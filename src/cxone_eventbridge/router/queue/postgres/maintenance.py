"""The PostgreSQL queue's upkeep: expire, dead-letter a removed target's work, prune, reclaim the leases of
routers that died, stats (every router's housekeeping runs these); see :class:`.backend.PostgresQueue`."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import asyncpg

from cxone_eventbridge.exceptions import QueueInUseError
from cxone_eventbridge.router.queue.postgres import statements as sql
from cxone_eventbridge.router.queue.postgres.connection import PostgresConnection, translate
from cxone_eventbridge.router.queue.records import DeadLetter, DeadLetterReason, QueueStats, TargetHold

# A router whose predecessor was SIGKILLed may start before the server has ended the dead one's session (and
# with it the owner lock): it waits this long for the lock before refusing. Measured here: the lock of a
# killed process was free 0.2-1.9 ms after its exit (10 kills); a second is margin for a loaded machine.
OWNER_LOCK_WAIT_S: Final = 1.0
# The lock's session is idle by design; the server probes it, so that a router whose machine vanished
# (no FIN ever comes) frees its owner name within about idle + interval x count seconds, not hours.
_KEEPALIVE: Final = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


class PostgresMaintenance(PostgresConnection):
    """The :class:`~cxone_eventbridge.router.queue.Maintenance` of a PostgreSQL queue.

    ``reclaim`` takes back the leases of this owner's earlier runs (other incarnations) at once, so the
    owner must name one live router: two under one name would each take the other's live leases and send
    those deliveries again. The first ``reclaim`` therefore takes the owner's lock (a session advisory lock
    on a connection of its own, held until ``close``; the server frees it when this process dies, however
    it dies) and a second live router under the same owner is refused with QueueInUseError. If the lock's
    connection is lost (a database restart), the next ``reclaim`` takes the lock again first.
    """

    async def expire(self, *, max_age_s: float) -> list[DeadLetter]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                sql.EXPIRE, self._now(), max_age_s, DeadLetterReason.EXPIRED.value, TargetHold.PAUSED.value
            )
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
        await self._hold_owner_lock()
        async with self._connection() as conn, conn.transaction():
            result = await conn.execute(sql.RECLAIM, self._now(), self.owner, self.incarnation)
            count = int(result.split()[-1])
            if count:
                await self._notify(conn)
        return count

    async def _hold_owner_lock(self) -> None:
        if self._owner_lock is not None and not self._owner_lock.is_closed():
            return
        key = f"cxeb-owner/{self.schema}/{self.owner}"
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout_s,
                server_settings={"application_name": f"cxeb-owner:{self.schema}"[:63], **_KEEPALIVE},
            )
            try:
                holder = await _take_lock(conn, key)
            except BaseException:
                await conn.close()
                raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise translate(exc) from exc
        if holder is not None:
            await conn.close()
            raise QueueInUseError(
                f"another live router uses this queue (schema {self.schema}) under the owner name"
                f" {self.owner!r}{holder}; two routers under one owner would each take the other's live leases"
                " and deliver them twice. Give each router its own owner (router serve names it host:port, one"
                " per worker): run this one on another host name or port."
            )
        self._owner_lock = conn

    async def stats(self) -> QueueStats:
        async with self._connection() as conn:
            counts = await conn.fetchrow(sql.STATS)
            by_target = await conn.fetch(sql.PENDING_BY_TARGET)
        assert counts is not None  # one row, always
        return QueueStats(
            pending=counts[0],
            leased=counts[1],
            delivered=counts[2],
            dead=counts[3],
            pending_by_target={row[0]: row[1] for row in by_target},
            oldest_pending_at=counts[4],
        )


async def _take_lock(conn: asyncpg.Connection, key: str) -> str | None:
    """Take the owner lock ``key`` on ``conn``, waiting up to OWNER_LOCK_WAIT_S: None once held, else a
    description of its holder for the refusal's message."""
    deadline = time.monotonic() + OWNER_LOCK_WAIT_S
    while not await conn.fetchval(sql.TRY_OWNER_LOCK, key):
        if time.monotonic() >= deadline:
            row = await conn.fetchrow(sql.OWNER_LOCK_HOLDER, key)
            if row is not None:  # else released just now: try again
                return f" (connected from {row[0] or 'a local socket'} since {row[1]:%Y-%m-%d %H:%M:%S %Z})"
        await asyncio.sleep(0.1)
    return None
