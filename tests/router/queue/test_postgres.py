"""What only the PostgreSQL backend does: migrations in a schema, wake-ups across routers, lost connections."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cxone_eventbridge.exceptions import QueueInUseError, QueueSchemaError, QueueUnavailableError
from cxone_eventbridge.router.queue import delivery_id_for
from cxone_eventbridge.router.queue.postgres import PostgresQueue, maintenance, statements
from cxone_eventbridge.router.queue.postgres.schema import MIGRATIONS

from ...router_serve import owner_name_held
from .conftest import ManualClock, event

pytestmark = pytest.mark.postgres


async def test_a_new_schema_is_refused_until_migrated_and_then_opens(postgres_dsn: str, pg_schema: str) -> None:
    """Without migrate, an empty schema is refused naming `cxeb router migrate`; after migrating it opens."""
    with pytest.raises(QueueSchemaError, match="cxeb router migrate"):
        await PostgresQueue(postgres_dsn, schema=pg_schema).open()
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True) as q:
        assert q.schema_version == MIGRATIONS[-1].version
    async with PostgresQueue(postgres_dsn, schema=pg_schema) as q:
        assert (await q.stats()).pending == 0


async def test_a_newer_schema_is_refused_with_a_clear_message(postgres_dsn: str, pg_schema: str) -> None:
    """A database migrated by a newer cxeb is not used: the message says to upgrade."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True):
        pass
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'UPDATE "{pg_schema}".schema_version SET version = 99')
    finally:
        await conn.close()
    with pytest.raises(QueueSchemaError, match=r"version 99, newer than this cxeb knows"):
        await PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True).open()


async def test_the_dsn_never_shows_in_repr() -> None:
    """The DSN may carry a password: repr names the schema and owner only."""
    queue = PostgresQueue("postgresql://u:hunter2@db.example/x", schema="s1", owner="r1")
    assert "hunter2" not in repr(queue)
    assert repr(queue) == "PostgresQueue(schema='s1', owner='r1')"


def test_an_invalid_schema_name_is_refused() -> None:
    """The schema is an SQL identifier; anything else is refused before it reaches SQL."""
    with pytest.raises(ValueError, match="schema"):
        PostgresQueue("postgresql://x", schema='bad"name')


async def test_an_unreachable_database_is_unavailable() -> None:
    """No server at the address: opening raises QueueUnavailableError (ingest answers 503), not a driver error."""
    with pytest.raises(QueueUnavailableError):
        await PostgresQueue("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=1).open()


async def test_a_put_through_one_router_wakes_the_others(postgres_dsn: str, pg_schema: str) -> None:
    """LISTEN/NOTIFY: another router learns of new work at once, without polling."""
    one = PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, owner="one")
    two = PostgresQueue(postgres_dsn, schema=pg_schema, owner="two")
    async with one, two:
        woken = asyncio.Event()
        two.on_ready(woken.set)
        async with asyncio.timeout(5):
            await woken.wait()  # the listener's first wake-up, once it listens
        woken.clear()
        await one.put([event("e1", "a")])
        async with asyncio.timeout(5):
            await woken.wait()


async def test_lost_connections_fail_at_most_one_call_then_the_queue_recovers(
    postgres_dsn: str, pg_schema: str, clock: ManualClock
) -> None:
    """The server dropping the queue's connections fails a call in progress as unavailable (or the pool
    notices first); the next calls reconnect, and everything committed is there."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, clock=clock, pool_size=1) as q:
        await q.put([event("e1", "a")])
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                q.application_name,
            )
        finally:
            await admin.close()
        expected = ["e1", "e3"]
        try:
            await q.put([event("e2", "a")])
            expected.insert(1, "e2")
        except QueueUnavailableError:
            pass  # not acknowledged, so not counted on: a client retries it
        await q.put([event("e3", "a")])
        leased = await q.lease({"a": 10}, limit=10, lease_s=30)
        assert sorted(d.event_id for d in leased) == expected


async def test_a_put_racing_another_routers_put_of_the_same_id_loses_no_target(
    postgres_dsn: str, pg_schema: str, clock: ManualClock
) -> None:
    """Two routers put the same new event id at once with different targets: the second adds only what the
    first did not, though its statement started before the first committed."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, clock=clock) as q:
        other = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
        try:
            transaction = other.transaction()
            await transaction.start()
            seq = await other.fetchval(
                "INSERT INTO events (event_id, body, priority, accepted_at) VALUES ('x', '{}', 5, $1) RETURNING id",
                clock.now,
            )
            await other.execute(
                "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at, next_attempt_at)"
                " VALUES ($1, $2, 'a', 5, 0, $3, $3)",
                seq,
                delivery_id_for("x", "a"),
                clock.now,
            )
            racing = asyncio.create_task(q.put([event("x", "a", "b")]))
            async with asyncio.timeout(5):
                while True:  # until the put waits on the other transaction's row
                    waiting = await other.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                        q.application_name,
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.01)
            await transaction.commit()
            [result] = await racing
        finally:
            await other.close()
        assert result.created == ("b",)
        leased = await q.lease({"a": 10, "b": 10}, limit=10, lease_s=30)
        assert sorted(d.target for d in leased) == ["a", "b"]


async def test_puts_commit_to_disk_and_lease_bookkeeping_does_not_wait_for_it(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A put (the 202) waits for its commit to reach the disk; leases and acks, whose loss is a redelivery,
    commit without waiting, except for targets with limits, whose send slots must not be handed out twice."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True) as q:
        async with q._connection() as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        async with q._connection(durable=False) as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            async with conn.transaction():
                await conn.execute(statements.DURABLE_COMMIT)
                assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_an_ack_lost_in_a_database_crash_is_a_redelivery_not_a_loss(
    postgres_dsn: str, pg_schema: str, clock: ManualClock
) -> None:
    """An ack committed without waiting for the disk and lost in a crash leaves the delivery as it was
    leased: its lease ends, it is reclaimed and delivered again (a duplicate), and the old lease's late
    ack changes nothing."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, clock=clock) as q:
        await q.put([event("e1", "a")])
        [first] = await q.lease({"a": 1}, limit=1, lease_s=30)
        async with q._connection() as conn:
            leased_row = dict((await conn.fetchrow("SELECT * FROM deliveries WHERE id = $1", int(first.key))).items())
            await q.ack(first, status=200)
            # What a crash undoes: the ack's row version never reached the disk; the leased one is back.
            del leased_row["id"]
            assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(leased_row, 2))
            await conn.execute(
                f"UPDATE deliveries SET {assignments} WHERE id = $1", int(first.key), *leased_row.values()
            )
        assert (await q.stats()).leased == 1
        clock.now += 31
        assert await q.reclaim() == 1
        [again] = await q.lease({"a": 1}, limit=1, lease_s=30)
        assert again.delivery_id == first.delivery_id
        assert again.lease_token != first.lease_token
        await q.ack(first, status=200)  # the first holder's ack, repeated: no longer its lease
        assert (await q.stats()).leased == 1
        await q.ack(again, status=200)
        stats = await q.stats()
        assert (stats.leased, stats.delivered) == (0, 1)


async def test_a_second_live_router_under_the_same_owner_is_refused(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two live routers under one owner would take each other's live leases: the second one's first reclaim
    (its start) is refused naming the owner; once the first closes, the name is free; other owners never clash."""
    monkeypatch.setattr(maintenance, "OWNER_LOCK_WAIT_S", 0.3)
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, owner="host:8080") as first:
        await first.reclaim()
        await first.reclaim()  # the lock is held already: no second connection, no refusal
        async with PostgresQueue(postgres_dsn, schema=pg_schema, owner="host:8081") as other:
            assert await other.reclaim() == 0
        second = PostgresQueue(postgres_dsn, schema=pg_schema, owner="host:8080")
        await second.open()
        try:
            with pytest.raises(QueueInUseError, match=r"owner name 'host:8080' \(connected from .* since"):
                await second.reclaim()
            await first.close()
            assert await second.reclaim() == 0
        finally:
            await second.close()


async def test_the_owner_name_is_freed_when_its_router_is_killed(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILLed router holds no owner lock: its successor under the same name starts (the server ends the
    dead process's session when the kernel closes its socket)."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True):
        pass
    async with (
        owner_name_held(postgres_dsn, pg_schema, "host:8080") as holder,
        PostgresQueue(postgres_dsn, schema=pg_schema, owner="host:8080") as successor,
    ):
        with monkeypatch.context() as short_wait:
            short_wait.setattr(maintenance, "OWNER_LOCK_WAIT_S", 0.2)
            with pytest.raises(QueueInUseError):
                await successor.reclaim()  # the holder is alive
        holder.kill()
        await holder.wait()
        assert await successor.reclaim() == 0  # within OWNER_LOCK_WAIT_S of the kill


async def test_a_lease_at_once_over_several_priorities_gives_back_what_the_scheduler_did_not_choose(
    postgres_dsn: str, pg_schema: str, clock: ManualClock
) -> None:
    """A lease in one statement claims each priority's candidates up to the target's cap; with work of two
    priorities ready it claims more than the cap, and gives back what the scheduler did not choose."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, clock=clock) as q:
        await q.put([event(f"p0-{i}", "a", priority=0) for i in range(3)])
        await q.put([event(f"p9-{i}", "a", priority=9) for i in range(3)])
        first = await q.lease({"a": 2}, limit=10, lease_s=30)
        assert [d.priority for d in first] == [0, 0]
        stats = await q.stats()
        assert (stats.leased, stats.pending) == (2, 4)  # the claimed priority-9 rows are pending again
        rest = await q.lease({"a": 10}, limit=10, lease_s=30)  # in steps now: several priorities are ready
        assert sorted(d.event_id for d in rest) == ["p0-2", "p9-0", "p9-1", "p9-2"]


async def test_a_lease_at_once_leaves_a_half_open_circuit_for_the_next_lease_to_probe(
    postgres_dsn: str, pg_schema: str, clock: ManualClock
) -> None:
    """A target with a shared circuit is left out of a lease in one statement; the next lease, in steps,
    hands out its probe (one), and the other targets' work goes on meanwhile."""
    async with PostgresQueue(postgres_dsn, schema=pg_schema, migrate=True, clock=clock) as q:
        await q.put([event("a1", "a"), event("a2", "a"), event("b1", "b"), event("b2", "b")])
        await q.open_circuit("b", open_for_s=10)
        clock.now += 11  # half-open
        first = await q.lease({"a": 10, "b": 10}, limit=10, lease_s=30)
        assert sorted(d.event_id for d in first) == ["a1", "a2"]
        [probe] = await q.lease({"a": 10, "b": 10}, limit=10, lease_s=30)
        assert (probe.target, probe.probe) == ("b", True)
        assert await q.lease({"a": 10, "b": 10}, limit=10, lease_s=30) == []  # one probe at a time
