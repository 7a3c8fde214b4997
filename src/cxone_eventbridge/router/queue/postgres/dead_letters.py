"""The PostgreSQL queue's dead letters: list, replay, purge (what an operator does with deliveries that
gave up, from any router); see :class:`.backend.PostgresQueue`."""

from __future__ import annotations

from collections.abc import Sequence

from cxone_eventbridge.router.queue.postgres import statements as sql
from cxone_eventbridge.router.queue.postgres.connection import PostgresConnection
from cxone_eventbridge.router.queue.records import DeadLetter


class PostgresDeadLetters(PostgresConnection):
    """The :class:`~cxone_eventbridge.router.queue.DeadLetterStore` of a PostgreSQL queue."""

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
                await self._notify(conn)
        return count

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        async with self._connection() as conn, conn.transaction():
            rows = await conn.fetch(
                sql.PURGE,
                target,
                list(delivery_ids) if delivery_ids is not None else None,
            )
            await conn.execute(sql.DROP_ORPHANS, list({row[0] for row in rows}))
        return len(rows)
