"""The SQL the PostgreSQL queue runs, by the job that runs it (the tables: ``schema.py``).

Times are Unix seconds (``float8``) from the database's clock (``now()``) unless a test injects one;
``NOW`` below is always ``coalesce(<injected $1>, extract(epoch from now()))``.
"""

from __future__ import annotations

from typing import Final

NOW: Final = "coalesce($1::float8, extract(epoch from now()))"
# A row holds a lease token exactly while it is leased (state 1): every statement that ends a lease clears
# it. So the statements that settle a batch of leases match on (id, token) alone, and the planner looks
# each row up by its primary key; with ``state = 1`` in them it preferred the leased-rows index, which
# holds an entry for every row leased since the last vacuum (9,894 entries read to settle 128 rows, 9 ms).
NO_LEASE: Final = "lease_owner = NULL, lease_incarnation = NULL, lease_token = NULL, lease_until = NULL"

PUT_EVENTS: Final = (
    "INSERT INTO events (event_id, body, priority, accepted_at)"
    " SELECT * FROM unnest($1::text[], $2::bytea[], $3::int2[], $4::float8[])"
    " ON CONFLICT (event_id) DO NOTHING"
)
# Deliveries take the stored event's priority and age, so a repeated id changes neither.
PUT_DELIVERIES: Final = (
    "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at, next_attempt_at)"
    f" SELECT e.id, x.did, x.target, e.priority, 0, e.accepted_at, least(e.accepted_at, {NOW})"
    " FROM unnest($2::text[], $3::text[], $4::text[]) AS x(event_id, target, did)"
    " JOIN events e ON e.event_id = x.event_id"
    " ON CONFLICT (event_seq, target) DO NOTHING RETURNING delivery_id"
)
# The whole put in one statement (one round trip, one commit): new events, then the deliveries of new
# and known events, then a NOTIFY when any delivery was created. A statement sees the table as it was
# when it started, so an id inserted meanwhile by another router's put is in neither ``ev`` nor the
# snapshot: its event ids are returned (``known``) so that the caller retries those with PUT_EVENTS and
# PUT_DELIVERIES, whose second statement sees the other router's committed row.
PUT: Final = (
    "WITH ev AS ("
    " INSERT INTO events (event_id, body, priority, accepted_at)"
    " SELECT * FROM unnest($2::text[], $3::bytea[], $4::int2[], $5::float8[])"
    " ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id, priority, accepted_at"
    "), known AS ("
    " SELECT id, event_id, priority, accepted_at FROM ev"
    " UNION ALL SELECT id, event_id, priority, accepted_at FROM events WHERE event_id = ANY($2::text[])"
    "), ins AS ("
    " INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at, next_attempt_at)"
    f" SELECT k.id, x.did, x.target, k.priority, 0, k.accepted_at, least(k.accepted_at, {NOW})"
    " FROM unnest($6::text[], $7::text[], $8::text[]) AS x(event_id, target, did)"
    " JOIN known k ON k.event_id = x.event_id"
    " ON CONFLICT (event_seq, target) DO NOTHING RETURNING delivery_id"
    ")"
    " SELECT (SELECT array_agg(delivery_id) FROM ins), (SELECT array_agg(event_id) FROM known),"
    " (SELECT pg_notify($9, '') WHERE EXISTS (SELECT 1 FROM ins))"
)
# The ready candidates of each (target, priority) pair, locked so that no other router leases them
# meanwhile; the ones the scheduler does not choose are unlocked at commit.
CANDIDATES: Final = (
    "SELECT c.id, c.target, c.priority, c.next_attempt_at"
    " FROM unnest($2::text[], $3::int[]) AS w(target, cap)"
    " CROSS JOIN generate_series(0, 9) AS p(priority)"
    " CROSS JOIN LATERAL ("
    "   SELECT d.id, d.target, d.priority, d.next_attempt_at FROM deliveries d"
    "   WHERE d.state = 0 AND d.target = w.target AND d.priority = p.priority"
    f"   AND d.next_attempt_at <= {NOW}"
    "   ORDER BY d.next_attempt_at, d.id LIMIT w.cap FOR UPDATE SKIP LOCKED"
    " ) c"
)
CLAIM: Final = (
    "UPDATE deliveries d SET state = 1, lease_owner = $3, lease_incarnation = $4, lease_token = $5,"
    f" lease_until = {NOW} + $6 FROM events e WHERE d.id = ANY($2::bigint[]) AND e.id = d.event_seq"
    " RETURNING d.id, d.delivery_id, e.event_id, d.target, d.priority, e.body, d.attempts, d.accepted_at,"
    " d.lease_until"
)
TARGET_ROWS: Final = "INSERT INTO target_state (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING"
# A limited target's row is locked for the lease, so routers count its leases and take its send slots
# one at a time (in name order: no deadlock). The count is a statement of its own, after the lock: a
# statement's snapshot is taken when it starts, before another router's claims committed.
LOCK_LIMITED: Final = "SELECT name FROM target_state WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE"
# The database's clock as the statement runs (``now()`` is when the transaction began): send slots are
# placed from it, and each reading, set against this process's clock, samples the offset between the two.
CLOCK: Final = "coalesce($1::float8, extract(epoch from clock_timestamp()))"
LIMITED_STATE: Final = (
    f"SELECT ts.name, ts.next_slot_at, {CLOCK},"
    " (SELECT count(*) FROM deliveries d WHERE d.state = 1 AND d.target = ts.name AND d.lease_until > $2)"
    " FROM target_state ts WHERE ts.name = ANY($3::text[])"
)
# What every lease reads first, in one row: its time, the clock, the disabled targets and the shared circuits.
_LEASE_STATE: Final = (
    f"SELECT {NOW} AS now, {CLOCK} AS clock,"
    " array(SELECT name FROM target_state WHERE disabled_reason IS NOT NULL ORDER BY name) AS disabled,"
    " array(SELECT name FROM target_state WHERE circuit_open_until IS NOT NULL ORDER BY name) AS circuits,"
    " array(SELECT circuit_open_until FROM target_state WHERE circuit_open_until IS NOT NULL ORDER BY name)"
    " AS circuit_until"
)
# The ready candidates of the targets asked for ($2, $3: targets without delivery limits, each with its cap
# per priority) unless disabled or with a circuit, locked as in CANDIDATES: the FROM and WHERE of a query
# whose rows ``r`` they are, with ``h`` (_LEASE_STATE's row) in scope.
_READY_UNLIMITED: Final = (
    "unnest($2::text[], $3::int[]) AS w(target, cap)"
    " CROSS JOIN generate_series(0, 9) AS p(priority)"
    " CROSS JOIN LATERAL ("
    "   SELECT d.id, d.target, d.priority, d.next_attempt_at FROM deliveries d"
    "   WHERE d.state = 0 AND d.target = w.target AND d.priority = p.priority AND d.next_attempt_at <= h.now"
    "   ORDER BY d.next_attempt_at, d.id LIMIT w.cap FOR UPDATE SKIP LOCKED"
    " ) r"
    " WHERE w.target <> ALL (h.disabled) AND w.target <> ALL (h.circuits)"
)
# A lease's first statement: _LEASE_STATE and the locked candidates. One row at least: the candidate columns
# are NULL when none is ready.
LEASE_START: Final = (
    "SELECT h.now, h.clock, h.disabled, h.circuits, h.circuit_until, c.id, c.target, c.priority, c.next_attempt_at"
    f" FROM ({_LEASE_STATE}) h LEFT JOIN LATERAL"
    f" (SELECT r.id, r.target, r.priority, r.next_attempt_at FROM {_READY_UNLIMITED}) c ON true"
)
# A whole lease in one statement, for the common case (targets without delivery limits, work of one priority
# ready): _LEASE_STATE, the number of priorities among the ready candidates, and the candidates claimed at
# once ($4-$7 as in CLAIM's $3-$6), at most $8 of them, taken as the scheduler takes one priority's: each
# target's first by (next_attempt_at, id) within its cap, then the first $8 of those (the most urgent
# priority first). With one priority ready the scheduler chooses every claimed row; with several the lease
# gives back those it does not choose, and the leases after it go in steps. One statement without a
# transaction of its own is one round trip instead of four (BEGIN, LEASE_START, CLAIM, COMMIT). Columns:
# _LEASE_STATE's five, the priorities, then CLAIM's nine and the candidate's next_attempt_at (NULL when none
# was claimed). The candidates are claimed by ``id = ANY(array(...))``, as CLAIM does: joined to them
# instead, the generic plan (which cannot know how few they are) hashed both tables whole, 14 ms a lease.
LEASE_CLAIM: Final = (
    f"WITH h AS ({_LEASE_STATE}), ready AS (SELECT r.id, r.priority, r.next_attempt_at FROM h, {_READY_UNLIMITED}),"
    " claimed AS (UPDATE deliveries d SET state = 1, lease_owner = $4, lease_incarnation = $5, lease_token = $6,"
    " lease_until = (SELECT now FROM h) + $7 FROM events e"
    " WHERE d.id = ANY(array(SELECT id FROM ready ORDER BY priority, next_attempt_at, id LIMIT $8))"
    " AND e.id = d.event_seq"
    " RETURNING d.id, d.delivery_id, e.event_id, d.target, d.priority, e.body, d.attempts, d.accepted_at,"
    " d.lease_until, d.next_attempt_at)"
    " SELECT h.now, h.clock, h.disabled, h.circuits, h.circuit_until,"
    " (SELECT count(DISTINCT priority) FROM ready), claimed.* FROM h LEFT JOIN claimed ON true"
)
OPEN_CIRCUIT: Final = (
    f"INSERT INTO target_state (name, circuit_open_until, circuit_open_s) VALUES ($2, {NOW} + $3, $3)"
    " ON CONFLICT (name) DO UPDATE SET circuit_open_until = excluded.circuit_open_until,"
    " circuit_open_s = excluded.circuit_open_s"
)
PROBE_CIRCUIT: Final = (
    f"UPDATE target_state SET circuit_open_until = least(circuit_open_until, {NOW})"
    " WHERE name = $2 AND circuit_open_until IS NOT NULL RETURNING name"
)
CIRCUITS: Final = (
    f"SELECT name, circuit_open_until, circuit_open_s, {NOW} FROM target_state WHERE circuit_open_until IS NOT NULL"
)
DISABLED: Final = "SELECT name, disabled_reason FROM target_state WHERE disabled_reason IS NOT NULL"
NEXT_SLOTS: Final = (
    "UPDATE target_state ts SET next_slot_at = v.at FROM unnest($1::text[], $2::float8[]) AS v(name, at)"
    " WHERE ts.name = v.name"
)
ACK: Final = (
    f"UPDATE deliveries d SET state = 2, attempts = greatest(d.attempts, v.attempts), done_at = {NOW},"
    f" last_status = v.status, {NO_LEASE}"
    " FROM unnest($2::bigint[], $3::text[], $4::int[], $5::int[]) AS v(id, token, attempts, status)"
    " WHERE d.id = v.id AND d.lease_token = v.token"
)
RESCHEDULE: Final = (
    f"UPDATE deliveries SET state = 0, attempts = $4, next_attempt_at = {NOW} + $5, last_status = $6,"
    f" last_error = $7, {NO_LEASE} WHERE id = $2 AND state = 1 AND lease_token = $3"
)
DEAD_LETTER: Final = (
    f"UPDATE deliveries SET state = 3, attempts = $4, reason = $5, done_at = {NOW}, last_status = $6,"
    f" last_error = $7, {NO_LEASE} WHERE id = $2 AND state = 1 AND lease_token = $3"
)
RELEASE: Final = (
    f"UPDATE deliveries d SET state = 0, {NO_LEASE} FROM unnest($1::bigint[], $2::text[]) AS v(id, token)"
    " WHERE d.id = v.id AND d.lease_token = v.token"
)
RENEW: Final = (
    f"UPDATE deliveries d SET lease_until = {NOW} + $4 FROM unnest($2::bigint[], $3::text[]) AS v(id, token)"
    " WHERE d.id = v.id AND d.lease_token = v.token"
    f" RETURNING d.id, d.lease_until, {NOW}"
)
RECLAIM: Final = (
    f"UPDATE deliveries SET state = 0, {NO_LEASE} WHERE id IN ("
    " SELECT id FROM deliveries WHERE state = 1"
    f" AND ((lease_owner = $2 AND lease_incarnation <> $3) OR lease_until <= {NOW})"
    " FOR UPDATE SKIP LOCKED)"
)
DEAD_LETTER_COLUMNS: Final = (
    "d.delivery_id, e.event_id, d.target, d.priority, d.attempts, d.reason, d.last_status, d.last_error,"
    " d.accepted_at, d.done_at"
)
# A paused target's work ($4: the paused reason) waits for its resume instead of expiring.
# Its age: since acceptance, less the time it spent paused (paused_s >= 0, so the first condition, which
# the index serves, holds whenever the second does).
EXPIRE: Final = (
    f"UPDATE deliveries d SET state = 3, reason = $3, done_at = {NOW} FROM events e"
    f" WHERE d.state = 0 AND d.accepted_at < {NOW} - $2 AND d.accepted_at + d.paused_s < {NOW} - $2"
    " AND e.id = d.event_seq"
    " AND NOT EXISTS (SELECT 1 FROM target_state t WHERE t.name = d.target AND t.disabled_reason = $4)"
    f" RETURNING {DEAD_LETTER_COLUMNS}"
)
DEAD_LETTER_TARGET: Final = (
    f"UPDATE deliveries d SET state = 3, reason = $3, done_at = {NOW} FROM events e"
    f" WHERE d.state = 0 AND d.target = $2 AND e.id = d.event_seq RETURNING {DEAD_LETTER_COLUMNS}"
)
DROP_ORPHANS: Final = (
    "DELETE FROM events e WHERE e.id = ANY($1::bigint[])"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.id)"
)
STATS: Final = (
    "SELECT (SELECT count(*) FROM deliveries WHERE state = 0), (SELECT count(*) FROM deliveries WHERE state = 1),"
    " (SELECT count(*) FROM deliveries WHERE state = 2), (SELECT count(*) FROM deliveries WHERE state = 3),"
    " (SELECT min(accepted_at) FROM deliveries WHERE state = 0)"
)
DEAD_LETTERS: Final = (
    f"SELECT {DEAD_LETTER_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_seq"
    " WHERE d.state = 3 AND ($1::text IS NULL OR d.target = $1) ORDER BY d.done_at DESC, d.id DESC LIMIT $2"
)
REPLAY: Final = (
    f"UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = {NOW}, accepted_at = {NOW}, paused_s = 0,"
    " reason = NULL, done_at = NULL WHERE state = 3 AND ($2::text IS NULL OR target = $2)"
    " AND ($3::text[] IS NULL OR delivery_id = ANY($3::text[]))"
)
PRUNE: Final = f"DELETE FROM deliveries WHERE state = 2 AND done_at < {NOW} - $2 RETURNING event_seq"
# Disabled again for the same reason (paused twice): it has been since the first time.
DISABLE: Final = (
    f"INSERT INTO target_state (name, disabled_reason, disabled_at) VALUES ($2, $3, {NOW})"
    " ON CONFLICT (name) DO UPDATE SET disabled_reason = excluded.disabled_reason, disabled_at = CASE"
    " WHEN target_state.disabled_reason = excluded.disabled_reason THEN target_state.disabled_at"
    " ELSE excluded.disabled_at END"
)
PURGE: Final = (
    "DELETE FROM deliveries WHERE state = 3 AND ($1::text IS NULL OR target = $1)"
    " AND ($2::text[] IS NULL OR delivery_id = ANY($2::text[])) RETURNING event_seq"
)
PENDING_BY_TARGET: Final = "SELECT target, count(*) FROM deliveries WHERE state = 0 GROUP BY target"
# Enabling a paused target ($3: the paused reason) credits each of its pending deliveries with the part of
# the pause it waited through (from its acceptance if that came later): paused time is no age.
ENABLE: Final = (
    "WITH held AS (SELECT name, disabled_reason, disabled_at FROM target_state"
    " WHERE name = $2 AND disabled_reason IS NOT NULL FOR UPDATE),"
    " enabled AS (UPDATE target_state t SET disabled_reason = NULL, disabled_at = NULL FROM held"
    " WHERE t.name = held.name RETURNING t.name),"
    f" credited AS (UPDATE deliveries d SET paused_s = d.paused_s + ({NOW} - greatest(d.accepted_at, held.disabled_at))"
    " FROM held WHERE held.disabled_reason = $3 AND d.target = held.name AND d.state = 0 RETURNING 1)"
    " SELECT (SELECT name FROM enabled), (SELECT count(*) FROM credited)"
)
CLOSE_CIRCUIT: Final = (
    "UPDATE target_state SET circuit_open_until = NULL, circuit_open_s = NULL"
    " WHERE name = $1 AND circuit_open_until IS NOT NULL RETURNING name"
)
DURABLE_COMMIT: Final = "SET LOCAL synchronous_commit = on"
# The owner lock (maintenance.py): a session advisory lock on a 64-bit hash of schema and owner.
TRY_OWNER_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
OWNER_LOCK_HOLDER: Final = (
    "SELECT host(a.client_addr), a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended($1, 0)"
)
