"""The SQLite queue's event archive: archived events, the attempt history and replay jobs, in the queue's file.

It writes through the queue's own group commit (:mod:`.executor`), so an attempt recorded just before its
ack, retry or dead letter joins the same transaction: a settled delivery never lacks the attempt that
settled it, and recording costs a row in an ``executemany`` rather than a commit. Reads that may touch
many rows run in the queue's worker thread (``offload=True``), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, Final

from cxone_eventbridge.exceptions import QueueError
from cxone_eventbridge.router.queue.archive_records import ArchivedEvent, AttemptRecord, EventHistory, ReplayJob
from cxone_eventbridge.router.queue.archive_sql import (
    DELIVERY_HISTORY_COLUMNS,
    REPLAY_JOB_COLUMNS,
    build_history,
    history_line,
    job_from_row,
    job_row,
)
from cxone_eventbridge.router.queue.sqlite.backend import SQLiteQueue

log = logging.getLogger(__name__)

_INSERT_ATTEMPT: Final = "INSERT INTO attempts (delivery_seq, line) VALUES (?, ?)"
_SAVE_JOB: Final = (
    f"INSERT OR REPLACE INTO replay_jobs (id, {REPLAY_JOB_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The attempts of deliveries that are gone, among those made before the archive period (their key is below
# that of the first delivery of the period's first event): an index range, not a scan of every attempt.
_PRUNE_ATTEMPTS: Final = (
    "DELETE FROM attempts WHERE delivery_seq < coalesce((SELECT d.seq FROM deliveries d WHERE d.event_seq >="
    " (SELECT min(seq) FROM events WHERE accepted_at >= ?1) ORDER BY d.event_seq LIMIT 1),"
    " (SELECT max(delivery_seq) + 1 FROM attempts), 0)"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = attempts.delivery_seq)"
)
_ARCHIVED: Final = (
    "SELECT seq, event_id, body, priority, accepted_at FROM events"
    " WHERE accepted_at >= ? AND accepted_at < ? AND replay_of IS NULL AND (accepted_at > ? OR seq > ?)"
    " ORDER BY accepted_at, seq LIMIT ?"
)


class SQLiteArchive:
    """A :class:`~cxone_eventbridge.router.queue.protocols.EventArchive` in ``queue``'s file (open the queue
    first; the archive opens and closes with it)."""

    def __init__(self, queue: SQLiteQueue) -> None:
        self._queue = queue
        self._lock = threading.Lock()  # the rows below are taken by whichever thread runs the commit
        self._rows: list[tuple[Any, ...]] = []
        self._written: asyncio.Future[None] | None = None  # the write the rows above will join
        self.dropped = 0  # attempts that could not be written (the queue closed or failed)

    def __repr__(self) -> str:
        return f"SQLiteArchive({self._queue.path})"

    # -- attempts ----------------------------------------------------------------------------------

    def record_attempt(self, attempt: AttemptRecord) -> None:
        with self._lock:
            self._rows.append((int(attempt.delivery_key), history_line(attempt)))
            if self._written is not None:
                return
            try:
                written = self._written = self._queue._executor.submit(self._write)
            except QueueError:
                self.dropped += len(self._rows)
                self._rows.clear()
                return
        written.add_done_callback(self._settled)

    def _write(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            self._written = None
        conn.executemany(_INSERT_ATTEMPT, rows)

    def _settled(self, written: asyncio.Future[None]) -> None:
        if not written.cancelled() and written.exception() is not None:
            self.dropped += 1
            log.warning("could not record a delivery attempt in the history: %s", written.exception())

    async def flush(self) -> None:
        def nothing(_conn: sqlite3.Connection) -> None:
            return None

        await self._queue._executor.submit(nothing)

    # -- history -----------------------------------------------------------------------------------

    async def history(self, event_id: str) -> EventHistory | None:
        def op(conn: sqlite3.Connection) -> EventHistory | None:
            event = conn.execute(
                "SELECT seq, body, priority, accepted_at, replay_of FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
            seqs = [event[0]] if event is not None else []
            seqs += [row[0] for row in conn.execute("SELECT seq FROM events WHERE replay_of = ?", (event_id,))]
            deliveries = conn.execute(
                f"SELECT d.seq, {DELIVERY_HISTORY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq"
                f" WHERE d.event_seq IN ({','.join('?' * len(seqs))}) ORDER BY d.seq",
                seqs,
            ).fetchall()
            keys = [row[0] for row in deliveries]
            attempts = conn.execute(
                f"SELECT delivery_seq, line FROM attempts WHERE delivery_seq IN ({','.join('?' * len(keys))})"
                " ORDER BY seq",
                keys,
            ).fetchall()
            return build_history(event_id, event[1:] if event is not None else None, deliveries, attempts)

        return await self._queue._executor.submit(op, offload=True)

    # -- archived events ---------------------------------------------------------------------------

    async def archived(
        self, *, since: float, until: float, after: tuple[float, int] | None = None, limit: int = 100
    ) -> list[ArchivedEvent]:
        after_at, after_seq = after if after is not None else (since, -1)

        def op(conn: sqlite3.Connection) -> list[ArchivedEvent]:
            rows = conn.execute(_ARCHIVED, (max(since, after_at), until, after_at, after_seq, limit)).fetchall()
            return [
                ArchivedEvent(seq, event_id, bytes(body), priority, at) for seq, event_id, body, priority, at in rows
            ]

        return await self._queue._executor.submit(op, offload=True)

    async def count_archived(self, *, since: float, until: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "SELECT count(*) FROM events WHERE accepted_at >= ? AND accepted_at < ? AND replay_of IS NULL",
                    (since, until),
                ).fetchone()[0]
            )

        return await self._queue._executor.submit(op, offload=True)

    async def mark_replays(self, pairs: Sequence[tuple[str, str]]) -> None:
        rows = [(original, replay_event_id) for replay_event_id, original in pairs]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE events SET replay_of = ? WHERE event_id = ?", rows)

        await self._queue._executor.submit(op)

    async def prune_archive(self, *, keep_s: float) -> int:
        cutoff = self._queue._clock() - keep_s

        def op(conn: sqlite3.Connection) -> int:
            events = conn.execute(
                "DELETE FROM events WHERE accepted_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
                (cutoff,),
            ).rowcount
            attempts = conn.execute(_PRUNE_ATTEMPTS, (cutoff,)).rowcount
            jobs = conn.execute(
                "DELETE FROM replay_jobs WHERE state != 'running' AND finished_at < ?", (cutoff,)
            ).rowcount
            return int(events + attempts + jobs)

        return await self._queue._executor.submit(op, offload=True)

    # -- replay jobs -------------------------------------------------------------------------------

    async def save_replay(self, job: ReplayJob) -> None:
        row = job_row(job)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_SAVE_JOB, row)

        await self._queue._executor.submit(op)

    async def replay_job(self, replay_id: str) -> ReplayJob | None:
        def op(conn: sqlite3.Connection) -> ReplayJob | None:
            row = conn.execute(
                f"SELECT id, {REPLAY_JOB_COLUMNS} FROM replay_jobs WHERE id = ?",
                (replay_id,),
            ).fetchone()
            return job_from_row(row) if row is not None else None

        return await self._queue._executor.submit(op)

    async def replay_jobs(self, *, limit: int = 20) -> list[ReplayJob]:
        def op(conn: sqlite3.Connection) -> list[ReplayJob]:
            rows = conn.execute(
                f"SELECT id, {REPLAY_JOB_COLUMNS} FROM replay_jobs ORDER BY created_at DESC, id LIMIT ?",
                (limit,),
            ).fetchall()
            return [job_from_row(row) for row in rows]

        return await self._queue._executor.submit(op, offload=True)

    async def claim_replays(self, *, runner: str, stale_before: float) -> list[ReplayJob]:
        now = self._queue._clock()

        def op(conn: sqlite3.Connection) -> list[ReplayJob]:
            rows = conn.execute(
                "UPDATE replay_jobs SET runner = ?, heartbeat_at = ? WHERE state = 'running'"
                " AND (runner = ? OR runner IS NULL OR heartbeat_at IS NULL OR heartbeat_at < ?)"
                f" RETURNING id, {REPLAY_JOB_COLUMNS}",
                (runner, now, runner, stale_before),
            ).fetchall()
            return sorted((job_from_row(row) for row in rows), key=lambda job: (job.created_at, job.replay_id))

        return await self._queue._executor.submit(op)
