"""The SQLite queue's target state: disabled targets (410) and shared circuits, kept in the file.

Kept in the file, as a shared backend keeps it in its database, so that it survives a restart and every
queue object on the file sees the same.
"""

from __future__ import annotations

import sqlite3

from cxone_eventbridge.router.queue.records import SharedCircuit, TargetHold
from cxone_eventbridge.router.queue.sqlite.store import SQLiteStore


class SQLiteTargetState(SQLiteStore):
    """The :class:`~..protocols.TargetStateStore` of the SQLite queue."""

    async def disable_target(self, name: str, *, reason: str) -> None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO disabled_targets (name, reason, at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET reason = excluded.reason,"
                # Disabled again for the same reason (paused twice): it has been since the first time.
                " at = CASE WHEN disabled_targets.reason = excluded.reason THEN disabled_targets.at"
                " ELSE excluded.at END",
                (name, reason, now),
            )

        await self._executor.submit(op)

    async def enable_target(self, name: str) -> bool:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            held = conn.execute("DELETE FROM disabled_targets WHERE name = ? RETURNING reason, at", (name,)).fetchone()
            if held is None:
                return False
            if held[0] == TargetHold.PAUSED.value:
                # Time spent paused does not count toward the maximum age: each pending delivery is credited
                # with the part of the pause it waited through (from its acceptance if that came later).
                conn.execute(
                    "UPDATE deliveries SET paused_s = paused_s + (? - MAX(accepted_at, ?))"
                    " WHERE target = ? AND state = 0",
                    (now, held[1], name),
                )
            return True

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

    async def probe_circuit(self, name: str) -> bool:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> bool:
            sql = "UPDATE circuits SET open_until = MIN(open_until, ?) WHERE name = ?"
            return conn.execute(sql, (now, name)).rowcount > 0

        return await self._executor.submit(op)

    async def circuits(self) -> dict[str, SharedCircuit]:
        def op(conn: sqlite3.Connection) -> dict[str, SharedCircuit]:
            rows = conn.execute("SELECT name, open_until, open_s FROM circuits").fetchall()
            return {name: SharedCircuit(until, open_s) for name, until, open_s in rows}

        return await self._executor.submit(op)
