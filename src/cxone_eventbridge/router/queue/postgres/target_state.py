"""The PostgreSQL queue's target state that every router sees: disabled targets (410) and shared circuits;
see :class:`.backend.PostgresQueue`."""

from __future__ import annotations

from cxone_eventbridge.router.queue.postgres import statements as sql
from cxone_eventbridge.router.queue.postgres.connection import PostgresConnection
from cxone_eventbridge.router.queue.records import SharedCircuit, TargetHold


class PostgresTargetState(PostgresConnection):
    """The :class:`~cxone_eventbridge.router.queue.TargetStateStore` of a PostgreSQL queue."""

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
            was = await conn.fetchval(sql.ENABLE, self._now(), name, TargetHold.PAUSED.value)
            if was is not None:
                await self._notify(conn)
        return was is not None

    async def disabled_targets(self) -> dict[str, str]:
        async with self._connection() as conn:
            return {row[0]: row[1] for row in await conn.fetch(sql.DISABLED)}

    async def open_circuit(self, name: str, *, open_for_s: float) -> None:
        async with self._connection() as conn:
            await conn.execute(sql.OPEN_CIRCUIT, self._now(), name, open_for_s)

    async def close_circuit(self, name: str) -> None:
        async with self._connection() as conn, conn.transaction():
            closed = await conn.fetchval(sql.CLOSE_CIRCUIT, name)
            if closed is not None:
                await self._notify(conn)

    async def probe_circuit(self, name: str) -> bool:
        async with self._connection() as conn, conn.transaction():
            probed = await conn.fetchval(sql.PROBE_CIRCUIT, self._now(), name)
            if probed is not None:
                await self._notify(conn)  # the probe is ready now, for whichever router leases it
        return probed is not None

    async def circuits(self) -> dict[str, SharedCircuit]:
        async with self._connection() as conn:
            rows = await conn.fetch(sql.CIRCUITS, self._now())
        local = self._local()
        return {row[0]: SharedCircuit(row[1] + local - row[3], row[2]) for row in rows}
