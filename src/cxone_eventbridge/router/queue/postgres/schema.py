"""The PostgreSQL queue's schema, as numbered migrations (the statements that use it: ``statements.py``).

Everything lives in one schema of its own (``cxeb`` by default), so several queues can share a
database and tests can drop theirs. Times are Unix seconds (``float8``), as in the SQLite backend.
"""

from __future__ import annotations

from typing import Final

from cxone_eventbridge.router.queue.archive_sql import REPLAY_JOB_COLUMN_TYPES
from cxone_eventbridge.router.queue.migrations import Migration

MIGRATIONS: Final = (
    Migration(
        1,
        "events, deliveries (with lease tokens) and the target state every router shares",
        (
            """CREATE TABLE events (
                id bigserial PRIMARY KEY,
                event_id text NOT NULL UNIQUE,
                body bytea NOT NULL,
                priority smallint NOT NULL,
                accepted_at float8 NOT NULL
            )""",
            """CREATE TABLE deliveries (
                id bigserial PRIMARY KEY,
                event_seq bigint NOT NULL,
                delivery_id text NOT NULL,
                target text NOT NULL,
                priority smallint NOT NULL,
                state smallint NOT NULL,
                accepted_at float8 NOT NULL,
                next_attempt_at float8 NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                lease_owner text,
                lease_incarnation text,
                lease_token text,
                lease_until float8,
                last_status integer,
                last_error text,
                reason text,
                done_at float8,
                UNIQUE (event_seq, target)
            )""",
            "CREATE INDEX ix_ready ON deliveries (target, priority, next_attempt_at, id) WHERE state = 0",
            "CREATE INDEX ix_pending_age ON deliveries (accepted_at) WHERE state = 0",
            "CREATE INDEX ix_leased ON deliveries (target, lease_until) WHERE state = 1",
            "CREATE INDEX ix_delivered ON deliveries (done_at) WHERE state = 2",
            "CREATE INDEX ix_dead ON deliveries (done_at) WHERE state = 3",
            "CREATE INDEX ix_delivery_id ON deliveries (delivery_id)",
            """CREATE TABLE target_state (
                name text PRIMARY KEY,
                disabled_reason text,
                disabled_at float8,
                next_slot_at float8
            )""",
        ),
    ),
    Migration(
        2,
        "each target's circuit, shared by every router (open until, last open period)",
        ("ALTER TABLE target_state ADD COLUMN circuit_open_until float8, ADD COLUMN circuit_open_s float8",),
    ),
    Migration(
        3,
        "fewer index entries written per delivery: delivery ids indexed for dead letters only, leased rows"
        " indexed by target alone (a lease renewal can then update the row in place)",
        (
            # Every state change writes the row's new version into each index whose predicate it meets: the
            # delivery id index took 3 of the 13 entries a delivery wrote (put, lease, ack), for lookups
            # that only dead letters need.
            "DROP INDEX ix_delivery_id",
            "CREATE INDEX ix_dead_delivery_id ON deliveries (delivery_id) WHERE state = 3",  # replay, purge
            "DROP INDEX ix_leased",
            "CREATE INDEX ix_leased ON deliveries (target) WHERE state = 1",
            "ALTER TABLE deliveries SET (fillfactor = 90)",  # room on the page for in-place (HOT) updates
        ),
    ),
    Migration(
        4,
        "the event archive: events by time, replays marked, each delivery's attempts, replay jobs",
        (
            "CREATE INDEX ix_events_accepted ON events (accepted_at)",
            "ALTER TABLE events ADD COLUMN replay_of text",
            "CREATE INDEX ix_events_replay_of ON events (replay_of) WHERE replay_of IS NOT NULL",
            # One row per attempt, by its delivery's key: integers that grow with time, cheap to append.
            "CREATE TABLE attempts (id bigserial PRIMARY KEY, delivery_seq bigint NOT NULL, line text NOT NULL)",
            "CREATE INDEX ix_attempts_delivery ON attempts (delivery_seq)",
            f"CREATE TABLE replay_jobs (id text PRIMARY KEY, {REPLAY_JOB_COLUMN_TYPES})",
        ),
    ),
    Migration(
        5,
        "time a delivery spent paused, which does not count toward its maximum age",
        ("ALTER TABLE deliveries ADD COLUMN paused_s float8 NOT NULL DEFAULT 0",),
    ),
)
