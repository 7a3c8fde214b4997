"""The SQLite queue's dead letters: list, replay, purge."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from cxone_eventbridge.router.queue.records import DeadLetter
from cxone_eventbridge.router.queue.sqlite import schema
from cxone_eventbridge.router.queue.sqlite.store import SQLiteStore, chunks, marks


def dead_letters_by_seq(conn: sqlite3.Connection, seqs: list[int]) -> list[DeadLetter]:
    """The dead letters of these delivery rows, in row order."""
    letters: list[DeadLetter] = []
    for chunk in chunks(seqs):
        rows = conn.execute(
            f"SELECT {schema.DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608 -- only placeholders are interpolated
            f" WHERE d.seq IN ({marks(len(chunk))}) ORDER BY d.seq",
            chunk,
        ).fetchall()
        letters.extend(DeadLetter.from_row(row) for row in rows)
    return letters


def drop_orphans(conn: sqlite3.Connection, event_seqs: set[int]) -> None:
    # An event goes with its last delivery; until then it is kept, and so is its id for dedup.
    conn.executemany(
        "DELETE FROM events WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?)",
        [(seq, seq) for seq in event_seqs],
    )


class SQLiteDeadLetters(SQLiteStore):
    """The :class:`~..protocols.DeadLetterStore` of the SQLite queue."""

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
            (sql + f" AND delivery_id IN ({marks(len(chunk))})", [*params, *chunk])
            for chunk in chunks(list(delivery_ids))
        ]

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        now = self._clock()
        # A replay starts over: a fresh retry budget and a fresh age, so it is not expired at once.
        statements = self._selected(
            "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ?, accepted_at = ?, paused_s = 0,"
            " reason = NULL, done_at = NULL WHERE state = 3",
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
            drop_orphans(conn, event_seqs)
            return total

        return await self._executor.submit(op, offload=True)
