"""What only the SQLite backend does: one durable file in WAL mode, group commit, a size cap, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cxone_eventbridge.exceptions import QueueCorruptError, QueueError, QueueFullError, QueueSchemaError
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
from cxone_eventbridge.router.queue.sqlite.schema import MIGRATIONS
from cxone_eventbridge.router.queue.sqlite.store import padded, power_of_two_chunks

from ...clocks import T0, ManualClock
from .conftest import event

ALL = {"a": 1000}


async def test_committed_put_survives_reopening_the_file(tmp_path: Path) -> None:
    """What put returned for is on disk: a new queue on the same file leases it; the file is in WAL mode."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        await q.put([event("e1", "a")])
    async with SQLiteQueue(path) as q:
        [d] = await q.lease(ALL, limit=10, lease_s=30)
        assert d.event_id == "e1"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_synchronous_full_is_the_default(tmp_path: Path) -> None:
    """Commits are durable against a machine crash unless configured otherwise."""
    assert SQLiteQueue(tmp_path / "q.db").synchronous == "FULL"


async def test_full_storage_raises_queue_full_and_keeps_what_was_accepted(tmp_path: Path) -> None:
    """A full disk surfaces as QueueFullError; nothing committed before is lost and acks still work."""
    async with SQLiteQueue(tmp_path / "q.db", max_size_bytes=256 * 1024) as q:
        accepted = 0
        refused: QueueFullError | None = None
        for i in range(100):
            try:
                await q.put([event(f"e{i}", "a", body=b"x" * 20_000)])
            except QueueFullError as exc:
                refused = exc
                break
            accepted += 1
        assert refused is not None
        assert "full" in str(refused)
        assert 0 < accepted < 100
        leased = await q.lease(ALL, limit=500, lease_s=30)
        assert len(leased) == accepted
        for d in leased:
            await q.ack(d)
        assert (await q.stats()).delivered == accepted


async def test_concurrent_puts_share_commits_and_all_land_on_disk(tmp_path: Path) -> None:
    """Group commit: many concurrent puts all succeed and are all in the file afterwards."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        results = await asyncio.gather(*(q.put([event(f"e{i}", "a", "b")]) for i in range(300)))
        assert all(r[0].created == ("a", "b") for r in results)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 600


async def test_a_new_file_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    """Opening creates the schema by its numbered steps and records the version in the file."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        assert q.schema_version == MIGRATIONS[-1].version
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].version


async def test_a_file_from_before_versions_is_upgraded_and_keeps_its_work(tmp_path: Path, clock: ManualClock) -> None:
    """A file with the version-1 tables but no recorded version gains the later steps; its deliveries lease."""
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0].statements:
            conn.execute(statement)
        conn.execute("INSERT INTO events (seq, event_id, body, priority, accepted_at) VALUES (1, 'old', x'7b7d', 5, 0)")
        conn.execute(
            "INSERT INTO deliveries (event_seq, delivery_id, target, priority, state, accepted_at, next_attempt_at)"
            " VALUES (1, 'msg_old', 'a', 5, 0, 0, 0)"
        )
    async with SQLiteQueue(path, clock=clock) as q:
        [d] = await q.lease(ALL, limit=10, lease_s=30)
        assert (d.event_id, d.body) == ("old", b"{}")
        await q.ack(d)
        assert (await q.stats()).delivered == 1


async def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """A file migrated by a newer cxeb is not opened: the message says to upgrade."""
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(QueueSchemaError, match=r"version 99, newer than this cxeb knows.*upgrade cxeb"):
        await SQLiteQueue(path).open()


async def test_without_migrate_a_file_behind_is_refused_naming_the_command(tmp_path: Path) -> None:
    """migrate=False refuses a file that needs steps, and names `cxeb router migrate`."""
    with pytest.raises(QueueSchemaError, match="cxeb router migrate"):
        await SQLiteQueue(tmp_path / "q.db", migrate=False).open()


async def test_using_an_unopened_queue_is_an_error(tmp_path: Path) -> None:
    """Operations before open() fail with a QueueError saying so, instead of hanging."""
    with pytest.raises(QueueError, match="not open"):
        await SQLiteQueue(tmp_path / "q.db").stats()


async def test_a_damaged_file_is_refused_at_open_with_what_to_do(tmp_path: Path) -> None:
    """Pages overwritten with garbage fail quick_check at open: QueueCorruptError naming the file and the way out."""
    path = tmp_path / "q.db"
    async with SQLiteQueue(path) as q:
        await q.put([event(f"e{n}", "a", body=b'{"pad": "' + b"x" * 500 + b'"}') for n in range(500)])
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in (3, 10):  # b-tree pages of the tables, past the header page
        data[page * page_size : (page + 1) * page_size] = bytes(range(256)) * (page_size // 256)
    path.write_bytes(bytes(data))
    with pytest.raises(QueueCorruptError, match="is damaged") as caught:
        await SQLiteQueue(path).open()
    assert str(path) in str(caught.value)
    assert ".recover" in str(caught.value)


async def test_the_next_lease_takes_back_a_lease_that_ran_out(tmp_path: Path, clock: ManualClock) -> None:
    """Without reclaim(): a lease after the earliest lease's end offers that delivery again; one renewed in
    time is not taken (the lease looks for expired leases only once one may have run out)."""
    async with SQLiteQueue(tmp_path / "q.db", clock=clock) as q:
        await q.put([event("e1", "a"), event("e2", "a")])
        [first] = await q.lease(ALL, limit=1, lease_s=10)
        [second] = await q.lease(ALL, limit=1, lease_s=20)
        clock.now = T0 + 8
        [second] = await q.renew([second], lease_s=30)  # now until T0 + 38
        clock.now = T0 + 10
        [again] = await q.lease(ALL, limit=10, lease_s=30)
        assert (again.delivery_id, again.attempts) == (first.delivery_id, 0)
        assert again.lease_token != first.lease_token
        clock.now = T0 + 21  # past the second's first end, not its renewed one
        assert await q.lease(ALL, limit=10, lease_s=30) == []
        clock.now = T0 + 38
        [taken] = await q.lease(ALL, limit=10, lease_s=30)
        assert taken.delivery_id == second.delivery_id


def test_row_counted_statements_are_written_for_powers_of_two_only() -> None:
    """IN lists are padded with their last key, multi-row inserts split 64 + 32 + 4: few statement texts,
    so the connection's statement cache keeps them prepared."""
    assert padded([7]) == [7]
    assert padded([1, 2, 3]) == [1, 2, 3, 3]
    assert len(padded(list(range(257)))) == 512
    assert [len(piece) for piece in power_of_two_chunks(list(range(100)), 512)] == [64, 32, 4]
    assert [len(piece) for piece in power_of_two_chunks(list(range(1300)), 512)] == [512, 512, 256, 16, 4]
    assert [x for piece in power_of_two_chunks(list(range(100)), 512) for x in piece] == list(range(100))
