"""The SQLite queue's file: opening it (integrity, migrations), the group-commit executor, and the hints.

Every job of the backend (:mod:`.work_cycle`, :mod:`.dead_letters`, :mod:`.maintenance`,
:mod:`.target_state`) is a class on top of :class:`SQLiteStore`; :class:`~.backend.SQLiteQueue` is all of
them over one file.

Finding ready work: ``_hints`` maps each (target, priority) that may have pending rows to a lower bound
of their ``next_attempt_at``, so a lease queries only pairs that may have work, each with an indexed
``LIMIT``. Every job that makes rows pending again (a retry, a release, a replay, a reclaim) notes them
here with ``_hint``.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Self

from cxone_eventbridge.exceptions import QueueCorruptError
from cxone_eventbridge.router.queue.migrations import latest_version, log_migrated, pending_migrations
from cxone_eventbridge.router.queue.scheduler import FairScheduler
from cxone_eventbridge.router.queue.sqlite import schema
from cxone_eventbridge.router.queue.sqlite.executor import GroupCommitExecutor

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

# A commit starts at most this often (see executor.GroupCommitExecutor): each synced COMMIT cost about
# 150-200 µs of CPU here whatever it carried, so below full speed more deliveries share one (#18).
COMMIT_WINDOW_S: Final = 0.002
_IN_CHUNK: Final = 512  # keys per "seq IN (...)", well under SQLite's bound-parameter limit


def marks(count: int) -> str:
    """``count`` comma-separated placeholders."""
    return ",".join("?" * count)


def chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# Statements whose text depends on how many rows they carry (``IN (?, ?, ...)``, multi-row VALUES) are
# written for a power-of-two count of rows only. Each distinct text is prepared anew once it falls out of
# the connection's statement cache (128), and a lease or a put of any size from 1 to 512 made hundreds of
# texts: preparing one cost 20-80 µs, more than running it (#18).


def padded(keys: Sequence[Any]) -> list[Any]:
    """``keys`` (not empty) with its last key repeated up to a power-of-two length, for ``IN (...)``."""
    size = 1 << (len(keys) - 1).bit_length()
    return [*keys, *[keys[-1]] * (size - len(keys))]


def power_of_two_chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> list[Sequence[Any]]:
    """``items`` in pieces of ``size`` (a power of two) and then of decreasing powers of two: 100 -> 64, 32, 4."""
    pieces: list[Sequence[Any]] = []
    start = 0
    while start < len(items):
        piece = min(size, 1 << ((len(items) - start).bit_length() - 1))
        pieces.append(items[start : start + piece])
        start += piece
    return pieces


class SQLiteStore:
    """One SQLite file in WAL mode, written through group commit; the state every job of the queue shares.

    ``owner`` names this router (stable across restarts); ``incarnation`` is fresh on every start, so
    ``reclaim()`` can tell this process's leases from those of a previous, crashed one.
    ``max_size_bytes`` caps the database file: beyond it writes fail with ``QueueFullError``, as a full
    disk does. ``clock`` is the backend's time (Unix seconds); ``migrate`` applies missing schema steps
    on open (the embedded default), otherwise a file behind this code is refused. ``commit_window_s``:
    commits start at most this often (0: as soon as the previous one is done).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        owner: str = "local",
        incarnation: str | None = None,
        synchronous: Synchronous = "FULL",
        max_size_bytes: int | None = None,
        priority_weights: Sequence[float] | None = None,
        clock: Callable[[], float] = time.time,
        migrate: bool = True,
        commit_window_s: float = COMMIT_WINDOW_S,
        keep_unmatched: bool = False,
    ) -> None:
        self.path = Path(path)
        self.keep_unmatched = keep_unmatched  # store events that matched no target too (the archive keeps them)
        self.owner = owner
        self.incarnation = incarnation or uuid.uuid4().hex
        self.synchronous: Synchronous = synchronous
        self.schema_version: int | None = None  # once open
        self._max_size_bytes = max_size_bytes
        self._clock = clock
        self._migrate = migrate
        self._scheduler = FairScheduler(priority_weights)
        # (target, priority) -> a lower bound on the next_attempt_at of its pending rows. A superset of
        # the pairs that have pending rows, so a lease queries only pairs that may have work.
        self._hints: dict[tuple[str, int], float] = {}
        # No lease this object handed out ends before this (backend time): until then a lease need not look
        # for expired ones. Lowered by every claim; -inf (look) after a rollback. Leases of another object
        # on the file are reclaimed by reclaim() in any case.
        self._lease_sweep_at = float("-inf")
        self._executor = GroupCommitExecutor(on_rollback=self._rebuild_hints, window_s=commit_window_s)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._executor.open(self._connect)

    async def close(self) -> None:
        """Commit what was submitted before, then close the file."""
        await self._executor.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used by the loop's thread and the worker in turn, never at once (see the executor).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            self._check_integrity(conn)
            if self._max_size_bytes is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={max(1, self._max_size_bytes // page_size)}")
            self._apply_migrations(conn)
            self._rebuild_hints(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        """Refuse a damaged file at open, rather than accept events into it and fail later.

        ``quick_check`` reads every page once (O(file size); it skips the index cross-checks of
        ``integrity_check``): a few milliseconds per MB here.
        """
        try:
            problems = [" ".join(str(row[0]).split()) for row in conn.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:  # a header too damaged for the check itself
            problems = [str(exc)]
        if problems != ["ok"]:
            raise QueueCorruptError(
                f"the queue file {self.path} is damaged (SQLite quick_check: {'; '.join(problems)}); "
                f"the router will not use it. Restore it from a backup, or move it aside to start with an "
                f"empty queue (`sqlite3 {self.path} .recover` may salvage its undelivered events)"
            )

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        pending = pending_migrations(current, schema.MIGRATIONS, backend="SQLite", migrate=self._migrate)
        for migration in pending:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version:d}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.schema_version = max(current, latest_version(schema.MIGRATIONS))
        if pending:
            log_migrated("SQLite", str(self.path), current, self.schema_version)

    # -- hints -------------------------------------------------------------------------------------

    def _rebuild_hints(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT target, priority, MIN(next_attempt_at) FROM deliveries WHERE state = 0 GROUP BY target, priority"
        ).fetchall()
        self._hints = {(target, priority): earliest for target, priority, earliest in rows}
        self._lease_sweep_at = float("-inf")

    def _hint(self, target: str, priority: int, next_attempt_at: float) -> None:
        key = (target, priority)
        current = self._hints.get(key)
        if current is None or next_attempt_at < current:
            self._hints[key] = next_attempt_at
