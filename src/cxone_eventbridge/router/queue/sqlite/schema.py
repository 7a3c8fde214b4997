"""The SQLite queue's schema, as numbered migrations (the version lives in ``PRAGMA user_version``).

Version 1 is the schema files had before versions were recorded (its statements are ``IF NOT EXISTS``,
so such a file passes through it unchanged); later steps only add to it.
"""

from __future__ import annotations

from typing import Final

from cxone_eventbridge.router.queue.archive_sql import REPLAY_JOB_COLUMN_TYPES
from cxone_eventbridge.router.queue.migrations import Migration

MIGRATIONS: Final = (
    Migration(
        1,
        "events, deliveries and disabled targets",
        (
            """CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                body BLOB NOT NULL,
                priority INTEGER NOT NULL,
                accepted_at REAL NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS deliveries (
                seq INTEGER PRIMARY KEY,
                event_seq INTEGER NOT NULL,
                delivery_id TEXT NOT NULL,
                target TEXT NOT NULL,
                priority INTEGER NOT NULL,
                state INTEGER NOT NULL,
                accepted_at REAL NOT NULL,
                next_attempt_at REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                lease_owner TEXT,
                lease_incarnation TEXT,
                lease_until REAL,
                last_status INTEGER,
                last_error TEXT,
                reason TEXT,
                done_at REAL,
                UNIQUE (event_seq, target)
            )""",
            "CREATE INDEX IF NOT EXISTS ix_ready ON deliveries (target, priority, next_attempt_at, seq)"
            " WHERE state = 0",
            "CREATE INDEX IF NOT EXISTS ix_pending_age ON deliveries (accepted_at) WHERE state = 0",
            "CREATE INDEX IF NOT EXISTS ix_leased ON deliveries (lease_until) WHERE state = 1",
            "CREATE INDEX IF NOT EXISTS ix_delivered ON deliveries (done_at) WHERE state = 2",
            "CREATE INDEX IF NOT EXISTS ix_dead ON deliveries (done_at) WHERE state = 3",
            """CREATE TABLE IF NOT EXISTS disabled_targets (
                name TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                at REAL NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "a lease token on each leased delivery: only its holder completes it",
        ("ALTER TABLE deliveries ADD COLUMN lease_token TEXT",),
    ),
    Migration(
        3,
        "the next send slot of each rate-limited target",
        ("CREATE TABLE target_slots (name TEXT PRIMARY KEY, next_slot_at REAL NOT NULL)",),
    ),
    Migration(
        4,
        "each target's circuit as the queue keeps it (open until, last open period)",
        ("CREATE TABLE circuits (name TEXT PRIMARY KEY, open_until REAL NOT NULL, open_s REAL NOT NULL)",),
    ),
    Migration(
        5,
        "the event archive: events by time, replays marked, each delivery's attempts, replay jobs",
        (
            "CREATE INDEX ix_events_accepted ON events (accepted_at)",
            "ALTER TABLE events ADD COLUMN replay_of TEXT",
            "CREATE INDEX ix_events_replay_of ON events (replay_of) WHERE replay_of IS NOT NULL",
            # One row per attempt, by its delivery's key: integers that grow with time, cheap to append.
            "CREATE TABLE attempts (seq INTEGER PRIMARY KEY, delivery_seq INTEGER NOT NULL, line TEXT NOT NULL)",
            "CREATE INDEX ix_attempts_delivery ON attempts (delivery_seq)",
            f"CREATE TABLE replay_jobs (id TEXT PRIMARY KEY, {REPLAY_JOB_COLUMN_TYPES})",
        ),
    ),
    Migration(
        6,
        "time a delivery spent paused, which does not count toward its maximum age",
        ("ALTER TABLE deliveries ADD COLUMN paused_s REAL NOT NULL DEFAULT 0",),
    ),
)

DEAD_LETTER_COLUMNS: Final = (
    "d.delivery_id, e.event_id, d.target, d.priority, d.attempts, d.reason, d.last_status, d.last_error,"
    " d.accepted_at, d.done_at"
)

# Clears whatever a lease left on a row that is no longer leased.
NO_LEASE: Final = "lease_owner = NULL, lease_incarnation = NULL, lease_token = NULL, lease_until = NULL"

ACK: Final = (
    "UPDATE deliveries SET state = 2, attempts = MAX(attempts, ?), done_at = ?, last_status = ?,"
    f" {NO_LEASE} WHERE seq = ? AND state = 1 AND lease_token = ?"
)
RESCHEDULE: Final = (
    "UPDATE deliveries SET state = 0, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?,"
    f" {NO_LEASE} WHERE seq = ? AND state = 1 AND lease_token = ?"
)
DEAD_LETTER: Final = (
    "UPDATE deliveries SET state = 3, attempts = ?, reason = ?, done_at = ?, last_status = ?, last_error = ?,"
    f" {NO_LEASE} WHERE seq = ? AND state = 1 AND lease_token = ?"
)
RELEASE: Final = (
    f"UPDATE deliveries SET state = 0, {NO_LEASE} WHERE seq = ? AND state = 1 AND lease_token = ?"
    " RETURNING target, priority, next_attempt_at"
)
RENEW: Final = "UPDATE deliveries SET lease_until = ? WHERE seq = ? AND state = 1 AND lease_token = ? RETURNING seq"
INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at, next_attempt_at)"
    " VALUES (?, ?, ?, ?, 0, ?, ?)"
)
