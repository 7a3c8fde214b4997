"""Group commit for one SQLite connection: many callers, one transaction, one fsync.

Every operation joins a list, and one commit loop takes whatever has queued up, runs it all in one
transaction (each operation in its own savepoint, so one failure fails only its caller) and commits
once. Concurrent callers therefore share one fsync instead of paying one each, and operations that
arrive while a commit is being synced wait for the next one.

Where the work runs: the hot operations' statements take microseconds each, so they run on the event
loop's thread; only ``COMMIT`` (the fsync, which releases the GIL) goes to the connection's one worker
thread. Handing every statement to a thread instead cost a GIL hand-off per statement and made an ack
wait milliseconds behind the busy event loop (measured: the delivery benchmark went from about 1,500 to
about 2,700 deliveries/s with this split). Operations that may scan or rewrite many rows are submitted
with ``offload=True`` and run their whole transaction in the worker thread, so they never stall the
loop. The connection is only ever used by one of the two threads at a time: the commit loop waits for
the worker before it starts the next transaction.

The commit window: a synced COMMIT costs about 160-210 µs of CPU here (the fsync) however little it
carries, and each transaction pays its ``BEGIN`` and first page touches again. So while commits carry more
than one operation (a busy router), a new one starts at most every ``window_s`` (2 ms for the queue),
and more deliveries share each; a lone caller (one operation per commit) never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from cxone_eventbridge.exceptions import QueueClosedError, QueueError, QueueFullError

T = TypeVar("T")
_Outcome = tuple[Any, BaseException | None]

_SQLITE_FULL: Final = 13
_MAX_BATCH_OPS: Final = 1024


def translate(exc: sqlite3.Error) -> QueueError:
    """SQLite's error as the queue's own (a full disk or size cap becomes QueueFullError)."""
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "full" in str(exc):
        return QueueFullError(f"the delivery queue's storage is full: {exc}")
    return QueueError(f"the delivery queue's storage failed: {exc}")


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    offload: bool  # may touch many rows: its whole transaction runs in the worker thread


class _StatementGroup:
    """Rows for one statement that share one operation (one executemany in one savepoint); each
    caller waits on its own future, so one cancelled caller cancels nothing for the others."""

    __slots__ = ("rows", "sql", "waiters")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.rows: list[tuple[Any, ...]] = []
        self.waiters: list[asyncio.Future[None]] = []

    def run(self, conn: sqlite3.Connection) -> None:
        conn.executemany(self.sql, self.rows)

    def settle(self, done: asyncio.Future[None]) -> None:
        error = QueueClosedError("the delivery queue is closed") if done.cancelled() else done.exception()
        for waiter in self.waiters:
            if waiter.done():
                continue  # the caller was cancelled; the statement has still been applied (or not)
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)


@dataclass(slots=True)
class _Transaction:
    """One group commit's progress: each operation's outcome, and whether a COMMIT is owed."""

    outcomes: list[_Outcome]
    begun: bool
    any_failed: bool = False

    def failed(self, outcome: _Outcome) -> None:
        self.outcomes.append(outcome)
        self.any_failed = True


class GroupCommitExecutor:
    """Runs operations on one SQLite connection in shared transactions. ``on_rollback`` is called (in
    whichever thread ran the transaction) after any operation or commit failed, so that caches of the
    rolled-back state can be rebuilt."""

    def __init__(
        self, on_rollback: Callable[[sqlite3.Connection], None] | None = None, *, window_s: float = 0.0
    ) -> None:
        self._on_rollback = on_rollback
        self._window_s = window_s
        self._pending: list[_Op] = []
        self._groups: dict[str, _StatementGroup] = {}  # not yet taken by the commit loop
        self._work = asyncio.Event()
        self._conn: sqlite3.Connection | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        """Connect in the worker thread (``connect`` may create and migrate the file) and start committing."""
        if self._conn is not None:
            return
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        loop = asyncio.get_running_loop()
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxeb-queue")
        try:
            self._conn = await loop.run_in_executor(worker, connect)
        except sqlite3.Error as exc:
            worker.shutdown(wait=False)
            raise translate(exc) from exc
        except BaseException:
            worker.shutdown(wait=False)
            raise
        self._worker = worker
        self._loop = loop
        self._committer = loop.create_task(self._commit_loop(self._conn, worker), name="cxeb-queue-commits")

    async def close(self) -> None:
        """Commit what was submitted before, then close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._work.set()
            await self._committer
        if self._conn is not None and self._worker is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._conn.close)
            self._worker.shutdown(wait=False)

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, offload: bool = False) -> asyncio.Future[T]:
        """Run ``fn`` in the next group commit; its result once committed."""
        loop = self._check_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Op(fn, future, offload))
        self._work.set()
        return future

    async def execute_grouped(self, sql: str, row: tuple[Any, ...]) -> None:
        """Run ``sql`` with ``row`` in the next group commit, in one executemany with other callers' rows.

        For statements that come one per delivery, many per commit (acks): a savepoint each cost more
        than the statement.
        """
        group = self._groups.get(sql)
        if group is None:
            group = self._groups[sql] = _StatementGroup(sql)
            self.submit(group.run).add_done_callback(group.settle)
        waiter: asyncio.Future[None] = self._check_loop().create_future()
        group.rows.append(row)
        group.waiters.append(waiter)
        await waiter

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise QueueClosedError("the delivery queue is closed")
        if self._loop is None:
            raise QueueError("the delivery queue is not open; call open() first")
        if asyncio.get_running_loop() is not self._loop:
            raise QueueError("the delivery queue is used from another event loop than the one that opened it")
        return self._loop

    async def _commit_loop(self, conn: sqlite3.Connection, worker: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        window_s = self._window_s
        started = float("-inf")
        shared = False  # the last commit carried more than one operation
        try:
            while True:
                if not self._pending:
                    if self._closed:
                        return
                    self._work.clear()
                    await self._work.wait()
                    continue
                if shared and window_s > 0 and not self._closed and len(self._pending) < _MAX_BATCH_OPS:
                    wait = started + window_s - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                started = loop.time()
                ops = self._pending[:_MAX_BATCH_OPS]
                shared = len(ops) > 1
                del self._pending[:_MAX_BATCH_OPS]
                self._groups.clear()  # later rows start new groups (these may run in the worker thread)
                if any(op.offload for op in ops):
                    outcomes = await loop.run_in_executor(worker, self._transaction, conn, ops)
                else:
                    transaction = self._execute(conn, ops)
                    outcomes = await loop.run_in_executor(worker, self._commit, conn, transaction)
                _settle(ops, outcomes)
        finally:
            closed = QueueClosedError("the delivery queue is closed")
            _settle(self._pending, [(None, closed)] * len(self._pending))
            self._pending.clear()

    def _transaction(self, conn: sqlite3.Connection, ops: list[_Op]) -> list[_Outcome]:
        return self._commit(conn, self._execute(conn, ops))

    def _execute(self, conn: sqlite3.Connection, ops: list[_Op]) -> _Transaction:
        """BEGIN, then each operation in its own savepoint; the COMMIT is left to ``_commit``."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return _Transaction([(None, translate(exc))] * len(ops), begun=False)
        transaction = _Transaction([], begun=True)
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result = op.fn(conn)
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                transaction.failed((None, translate(exc)))
            except Exception as exc:  # noqa: BLE001 -- the commit loop's boundary: a bug in one operation fails its caller, not every caller
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                transaction.failed((None, exc))
            else:
                conn.execute("RELEASE op")
                transaction.outcomes.append((result, None))
        return transaction

    def _commit(self, conn: sqlite3.Connection, transaction: _Transaction) -> list[_Outcome]:
        if not transaction.begun:
            return transaction.outcomes
        outcomes = transaction.outcomes
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [(None, translate(exc))] * len(outcomes)
            transaction.any_failed = True
        if transaction.any_failed and self._on_rollback is not None:
            self._on_rollback(conn)
        return outcomes


def _settle(ops: list[_Op], outcomes: list[_Outcome]) -> None:
    for op, (result, error) in zip(ops, outcomes, strict=True):
        if op.future.done():
            continue  # the caller was cancelled; the operation has still been applied
        if error is not None:
            op.future.set_exception(error)
        else:
            op.future.set_result(result)
