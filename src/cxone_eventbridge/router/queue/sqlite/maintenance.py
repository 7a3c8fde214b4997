"""The SQLite queue's upkeep: expire, dead-letter a removed target's work, prune, reclaim, stats."""

from __future__ import annotations

import sqlite3

from cxone_eventbridge.router.queue.records import DeadLetter, DeadLetterReason, DeliveryState, QueueStats, TargetHold
from cxone_eventbridge.router.queue.sqlite import schema
from cxone_eventbridge.router.queue.sqlite.dead_letters import dead_letters_by_seq, drop_orphans
from cxone_eventbridge.router.queue.sqlite.store import SQLiteStore


class SQLiteMaintenance(SQLiteStore):
    """The :class:`~..protocols.Maintenance` of the SQLite queue."""

    async def expire(self, *, max_age_s: float) -> list[DeadLetter]:
        now = self._clock()
        cutoff = now - max_age_s

        def op(conn: sqlite3.Connection) -> list[DeadLetter]:
            seqs = [
                row[0]
                for row in conn.execute(
                    "UPDATE deliveries SET state = 3, reason = ?, done_at = ?"
                    # Its age: since acceptance, less the time it spent paused (paused_s >= 0, so the first
                    # condition, which the index serves, holds whenever the second does).
                    " WHERE state = 0 AND accepted_at < ? AND accepted_at + paused_s < ?"
                    # A paused target's work waits for its resume.
                    " AND target NOT IN (SELECT name FROM disabled_targets WHERE reason = ?) RETURNING seq",
                    (DeadLetterReason.EXPIRED.value, now, cutoff, cutoff, TargetHold.PAUSED.value),
                ).fetchall()
            ]
            return dead_letters_by_seq(conn, seqs)

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
            return dead_letters_by_seq(conn, seqs)

        return await self._executor.submit(op, offload=True)

    async def prune(self, *, retention_s: float) -> int:
        cutoff = self._clock() - retention_s

        def op(conn: sqlite3.Connection) -> int:
            deleted = conn.execute(
                "DELETE FROM deliveries WHERE state = 2 AND done_at < ? RETURNING event_seq", (cutoff,)
            ).fetchall()
            drop_orphans(conn, {row[0] for row in deleted})
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
