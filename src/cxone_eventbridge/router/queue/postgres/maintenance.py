"""The PostgreSQL queue's upkeep: expire, dead-letter a removed target's work, prune, reclaim the leases of
routers that died, stats (every router's housekeeping runs these); see :class:`.backend.PostgresQueue`."""

from __future__ import annotations

from cxone_eventbridge.router.queue.postgres import statements as sql
from cxone_eventbridge.router.queue.postgres.connection import PostgresConnection
from cxone_eventbridge.router.queue.records import DeadLetter, DeadLetterReason, QueueStats, TargetHold


class PostgresMaintenance(PostgresConnection):
    """The :class:`~cxone_eventbridge.router.queue.Maintenance` of a PostgreSQL queue."""

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
        async with self._connection() as conn, conn.transaction():
            result = await conn.execute(sql.RECLAIM, self._now(), self.owner, self.incarnation)
            count = int(result.split()[-1])
            if count:
                await self._notify(conn)
        return count

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
