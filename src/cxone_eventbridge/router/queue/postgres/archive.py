"""The PostgreSQL queue's event archive: archived events, the attempt history and replay jobs, in its schema.

Attempts are written as the queue writes acks: recorded ones join one ``INSERT ... SELECT FROM unnest``,
sent at once and joined by whatever is recorded while it runs,
so the history costs a share of one statement per batch rather than a statement per attempt. Every router
sharing the queue writes its own attempts; replay jobs are claimed by one router at a time (a heartbeat; a router that
stops sending it loses its jobs to the others).
"""

from __future__ import annotations

import asyncio
import logging
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
from cxone_eventbridge.router.queue.postgres.backend import PostgresQueue
from cxone_eventbridge.router.queue.postgres.statements import NOW

log = logging.getLogger(__name__)

_INSERT_ATTEMPTS: Final = "INSERT INTO attempts (delivery_seq, line) SELECT * FROM unnest($1::bigint[], $2::text[])"
_HISTORY_ATTEMPTS: Final = "SELECT delivery_seq, line FROM attempts WHERE delivery_seq = ANY($1::bigint[]) ORDER BY id"
_HISTORY_EVENTS: Final = (
    "SELECT id, body, priority, accepted_at, replay_of, event_id FROM events WHERE event_id = $1"
    " UNION ALL SELECT id, NULL, NULL, NULL, NULL, event_id FROM events WHERE replay_of = $1"
)
_HISTORY_DELIVERIES: Final = (
    f"SELECT d.id, {DELIVERY_HISTORY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_seq"
    " WHERE d.event_seq = ANY($1::bigint[]) ORDER BY d.id"
)
_ARCHIVED: Final = (
    "SELECT id, event_id, body, priority, accepted_at FROM events"
    " WHERE accepted_at >= $1 AND accepted_at < $2 AND replay_of IS NULL AND (accepted_at > $3 OR id > $4)"
    " ORDER BY accepted_at, id LIMIT $5"
)
_MARK_REPLAYS: Final = (
    "UPDATE events e SET replay_of = v.original FROM unnest($1::text[], $2::text[]) AS v(event_id, original)"
    " WHERE e.event_id = v.event_id"
)
_PRUNE: Final = (
    "WITH ev AS (DELETE FROM events e WHERE e.accepted_at < $1"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.id) RETURNING 1),"
    " at AS (DELETE FROM attempts a WHERE a.delivery_seq < coalesce((SELECT d.id FROM deliveries d"
    " WHERE d.event_seq >= (SELECT min(id) FROM events WHERE accepted_at >= $1) ORDER BY d.event_seq LIMIT 1),"
    " (SELECT max(delivery_seq) + 1 FROM attempts), 0)"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_seq) RETURNING 1),"
    " jobs AS (DELETE FROM replay_jobs WHERE state <> 'running' AND finished_at < $1 RETURNING 1)"
    " SELECT (SELECT count(*) FROM ev) + (SELECT count(*) FROM at) + (SELECT count(*) FROM jobs)"
)
_SAVE_JOB: Final = (
    f"INSERT INTO replay_jobs (id, {REPLAY_JOB_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    " ON CONFLICT (id) DO UPDATE SET"
    + ",".join(f" {c.strip()} = excluded.{c.strip()}" for c in REPLAY_JOB_COLUMNS.split(","))
)
_CLAIM: Final = (
    f"UPDATE replay_jobs SET runner = $2, heartbeat_at = {NOW} WHERE state = 'running'"
    " AND (runner = $2 OR runner IS NULL OR heartbeat_at IS NULL OR heartbeat_at < $3)"
    f" RETURNING id, {REPLAY_JOB_COLUMNS}"
)


class PostgresArchive:
    """A :class:`~cxone_eventbridge.router.queue.protocols.EventArchive` in ``queue``'s schema (it uses the
    queue's connection pool: open the queue first)."""

    def __init__(self, queue: PostgresQueue) -> None:
        self._queue = queue
        self._rows: list[tuple[int, str]] = []  # (delivery key, line)
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0  # attempts that could not be written

    def __repr__(self) -> str:
        return f"PostgresArchive(schema={self._queue.schema!r})"

    def _connection(self) -> Any:
        return self._queue._connection()

    def _now(self) -> float | None:
        return self._queue._now()

    # -- attempts ----------------------------------------------------------------------------------

    def record_attempt(self, attempt: AttemptRecord) -> None:
        self._rows.append((int(attempt.delivery_key), history_line(attempt)))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._rows:
            rows, self._rows = self._rows, []
            try:
                async with self._connection() as conn:
                    await conn.execute(_INSERT_ATTEMPTS, [row[0] for row in rows], [row[1] for row in rows])
            except QueueError as exc:
                self.dropped += len(rows)
                log.warning("could not record %d delivery attempts in the history: %s", len(rows), exc)

    async def flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    # -- history -----------------------------------------------------------------------------------

    async def history(self, event_id: str) -> EventHistory | None:
        async with self._connection() as conn:
            events = await conn.fetch(_HISTORY_EVENTS, event_id)
            deliveries = await conn.fetch(_HISTORY_DELIVERIES, [row[0] for row in events])
            attempts = await conn.fetch(_HISTORY_ATTEMPTS, [row[0] for row in deliveries])
        event = next((row[1:5] for row in events if row[5] == event_id), None)
        return build_history(event_id, event, deliveries, attempts)

    # -- archived events ---------------------------------------------------------------------------

    async def archived(
        self, *, since: float, until: float, after: tuple[float, int] | None = None, limit: int = 100
    ) -> list[ArchivedEvent]:
        after_at, after_seq = after if after is not None else (since, -1)
        async with self._connection() as conn:
            rows = await conn.fetch(_ARCHIVED, max(since, after_at), until, after_at, after_seq, limit)
        return [ArchivedEvent(row[0], row[1], bytes(row[2]), row[3], row[4]) for row in rows]

    async def count_archived(self, *, since: float, until: float) -> int:
        async with self._connection() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM events WHERE accepted_at >= $1 AND accepted_at < $2 AND replay_of IS NULL",
                since,
                until,
            )
        return int(count)

    async def mark_replays(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        async with self._connection() as conn:
            await conn.execute(_MARK_REPLAYS, [p[0] for p in pairs], [p[1] for p in pairs])

    async def prune_archive(self, *, keep_s: float) -> int:
        async with self._connection() as conn:
            now = await conn.fetchval(f"SELECT {NOW}", self._now())
            return int(await conn.fetchval(_PRUNE, now - keep_s))

    # -- replay jobs -------------------------------------------------------------------------------

    async def save_replay(self, job: ReplayJob) -> None:
        async with self._connection() as conn:
            await conn.execute(_SAVE_JOB, *job_row(job))

    async def replay_job(self, replay_id: str) -> ReplayJob | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT id, {REPLAY_JOB_COLUMNS} FROM replay_jobs WHERE id = $1", replay_id)
        return job_from_row(row) if row is not None else None

    async def replay_jobs(self, *, limit: int = 20) -> list[ReplayJob]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT id, {REPLAY_JOB_COLUMNS} FROM replay_jobs ORDER BY created_at DESC, id LIMIT $1",
                limit,
            )
        return [job_from_row(row) for row in rows]

    async def claim_replays(self, *, runner: str, stale_before: float) -> list[ReplayJob]:
        async with self._connection() as conn:
            rows = await conn.fetch(_CLAIM, self._now(), runner, stale_before)
        return sorted((job_from_row(row) for row in rows), key=lambda job: (job.created_at, job.replay_id))
