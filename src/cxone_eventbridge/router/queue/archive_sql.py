"""What both backends' archives share: column definitions, column orders, and rows made into records.

Attempts are rows of ``attempts`` keyed by their delivery's key (the queue's integer row id, which grows
with time, so the index is appended to rather than written all over: 3.5 µs per attempt in a queue
micro-benchmark here, against 8.5 for an index by event id and 7 for appending to the delivery's own row),
each one JSON array (attempt, at, outcome, status, latency_s, category, error).

The type names are PostgreSQL's and read the same in SQLite (``float8`` has REAL affinity there, ``text``
TEXT), so one definition serves both migrations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, Final

from cxone_eventbridge.router.queue.archive_records import (
    AttemptRecord,
    DeliveryHistory,
    EventHistory,
    ReplayJob,
    ReplayState,
    replay_of,
)
from cxone_eventbridge.router.queue.records import DeliveryState

REPLAY_JOB_COLUMNS: Final = (
    "since, until_at, target, pattern, rate_per_s, state, created_at, cursor_at, cursor_seq, scanned, replayed,"
    " deliveries, total, finished_at, error, runner, heartbeat_at"
)
REPLAY_JOB_COLUMN_TYPES: Final = (
    "since float8 NOT NULL, until_at float8 NOT NULL, target text, pattern text, rate_per_s float8 NOT NULL,"
    " state text NOT NULL, created_at float8 NOT NULL, cursor_at float8, cursor_seq bigint,"
    " scanned bigint NOT NULL, replayed bigint NOT NULL, deliveries bigint NOT NULL, total bigint,"
    " finished_at float8, error text, runner text, heartbeat_at float8"
)
# The columns of an event's deliveries that its history shows, in this order, after the backend's own key
# column (``e`` is the events row).
DELIVERY_HISTORY_COLUMNS: Final = (
    "d.delivery_id, d.target, d.state, d.attempts, d.last_status, d.last_error, d.reason, d.done_at, e.event_id"
)


def history_line(attempt: AttemptRecord) -> str:
    """An attempt as its row's ``line``: a JSON array (attempt, at, outcome, status,
    latency_s, category, error). The common case, no error text, is formatted directly (one per attempt)."""
    if attempt.error is None and attempt.category is None:
        status = "null" if attempt.status is None else str(int(attempt.status))
        return f'[{attempt.attempt:d},{attempt.at!r},"{attempt.outcome}",{status},{attempt.latency_s!r},null,null]'
    return json.dumps(list(attempt[1:]), separators=(",", ":"))


def parse_attempts(rows: Iterable[Sequence[Any]]) -> dict[str, list[AttemptRecord]]:
    """Attempt rows (delivery key, line), oldest first, by delivery key (a damaged line is skipped)."""
    by_key: dict[str, list[AttemptRecord]] = {}
    for key, line in rows:
        try:
            record = AttemptRecord(str(key), *json.loads(line))
        except (ValueError, TypeError):
            continue
        by_key.setdefault(record.delivery_key, []).append(record)
    return by_key


def job_row(job: ReplayJob) -> tuple[Any, ...]:
    """A replay job as its id followed by the row ``REPLAY_JOB_COLUMNS`` names (the record's field order)."""
    return tuple(
        value.value if isinstance(value, ReplayState) else value
        for value in (getattr(job, f.name) for f in fields(job))
    )


def job_from_row(row: Sequence[Any]) -> ReplayJob:
    """A replay job from ``id, REPLAY_JOB_COLUMNS``."""
    values = dict(zip((f.name for f in fields(ReplayJob)), row, strict=True))
    values["state"] = ReplayState(values["state"])
    return ReplayJob(**values)


def build_history(
    event_id: str,
    event: Sequence[Any] | None,
    deliveries: Iterable[Sequence[Any]],
    attempts: Iterable[Sequence[Any]],
) -> EventHistory | None:
    """An event's history from its row (``body, priority, accepted_at, replay_of``, or None), the rows of its
    and its replays' deliveries (the backend's key, then ``DELIVERY_HISTORY_COLUMNS``) and their attempts'
    (key, line). None when nothing at all is known of the event."""
    rows = list(deliveries)
    by_key = parse_attempts(attempts)
    if event is None and not rows:
        return None
    shown = []
    for row in rows:
        replay = replay_of(row[9])
        shown.append(
            DeliveryHistory(
                delivery_id=row[1],
                target=row[2],
                state=DeliveryState(row[3]).label,
                attempts=row[4],
                last_status=row[5],
                last_error=row[6],
                reason=row[7],
                done_at=row[8],
                replay_id=replay[0] if replay is not None else None,
                event_id=row[9],
                history=tuple(by_key.get(str(row[0]), ())),
            )
        )
    shown.sort(key=lambda d: (d.replay_id is not None, d.history[0].at if d.history else float("inf"), d.target))
    return EventHistory(
        event_id=event_id,
        body=bytes(event[0]) if event is not None else None,
        priority=event[1] if event is not None else None,
        accepted_at=event[2] if event is not None else None,
        replay_of=event[3] if event is not None else None,
        deliveries=tuple(shown),
    )
