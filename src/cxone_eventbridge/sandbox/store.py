"""The sandbox's database: targets per tenant, idempotency records and server metadata, in SQLite.

In memory by default; with a file path the state survives a restart. One connection behind a lock: the
sandbox serves a developer or a test suite, and each operation is a short local transaction (the app may be
driven from a uvicorn thread and, in process, from a test's event loop at the same time).

Secrets are stored as given: the sandbox holds only what a developer typed into it, and the routes table
must serve them back to routers. So the database file is readable by its owner only (0600, and SQLite
gives its ``-wal`` and ``-shm`` files the same mode).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cxone_eventbridge.exceptions import SandboxError
from cxone_eventbridge.models import IntegrationTarget

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS targets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
"""


class NameTakenError(SandboxError):
    """Another target of the tenant already has this name."""


class DuplicateIdempotencyKeyError(SandboxError):
    """Another request stored a response under this idempotency key first."""


class StaleVersionError(SandboxError):
    """The target changed since the version the caller read."""


@dataclass(frozen=True)
class StoredTarget:
    """A target with its secrets, its version (the ETag's source) and its position in the listing order."""

    target: IntegrationTarget
    version: int
    seq: int

    @property
    def id(self) -> str:
        assert self.target.id is not None
        return self.target.id


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    response: str


def _owner_only(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would follow the umask: usually 0644), or make an
    existing one 0600; SQLite creates the journal files with the database file's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    with contextlib.suppress(PermissionError):  # not ours to change: SQLite will say if it cannot open it
        os.chmod(path, 0o600)


class TargetStore:
    """All persistent state of the sandbox."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _owner_only(path)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._lock = threading.Lock()
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _target_write(
        self, tenant: str, name: str, idempotency_key: str | None, request_hash: str, response: str
    ) -> Iterator[sqlite3.Connection]:
        """A transaction that writes a target, then (with ``idempotency_key``) the answer recorded under the key.

        A unique-constraint failure says what clashed: the idempotency key, or else the target's ``name``.
        """
        try:
            with self._transaction() as db:
                yield db
                if idempotency_key is not None:
                    db.execute(
                        "INSERT INTO idempotency (tenant, key, request_hash, response, created_at)"
                        " VALUES (?, ?, ?, ?, julianday('now'))",
                        (tenant, idempotency_key, request_hash, response),
                    )
        except sqlite3.IntegrityError as exc:
            if "idempotency" in str(exc):
                raise DuplicateIdempotencyKeyError(idempotency_key) from exc
            raise NameTakenError(name) from exc

    def meta_setdefault(self, key: str, value: str) -> str:
        """The stored value for ``key``, storing ``value`` first when there is none."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    @staticmethod
    def _row(row: tuple[int, int, str]) -> StoredTarget:
        seq, version, body = row
        return StoredTarget(IntegrationTarget.model_validate_json(body), version, seq)

    def page(self, tenant: str, *, after_seq: int, limit: int, name: str | None = None) -> list[StoredTarget]:
        """Up to ``limit`` targets after ``after_seq`` in creation order."""
        query = "SELECT seq, version, body FROM targets WHERE tenant = ? AND seq > ?"
        params: list[object] = [tenant, after_seq]
        if name is not None:
            query += " AND name = ?"
            params.append(name)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [self._row(r) for r in rows]

    def all(self, tenant: str) -> list[StoredTarget]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, version, body FROM targets WHERE tenant = ? ORDER BY seq", (tenant,)
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, tenant: str, target_id: str) -> StoredTarget | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, version, body FROM targets WHERE tenant = ? AND id = ?", (tenant, target_id)
            ).fetchone()
        return self._row(row) if row is not None else None

    def insert(
        self,
        tenant: str,
        target: IntegrationTarget,
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
        response: str = "",
    ) -> StoredTarget:
        """Insert a new target (version 1) and, in the same transaction, its idempotency record."""
        assert target.id is not None
        body = target.model_dump_json(by_alias=True, context={"reveal_secrets": True})
        with self._target_write(tenant, target.name, idempotency_key, request_hash, response) as db:
            cursor = db.execute(
                "INSERT INTO targets (tenant, id, name, version, body) VALUES (?, ?, ?, 1, ?)",
                (tenant, target.id, target.name, body),
            )
        assert cursor.lastrowid is not None
        return StoredTarget(target, 1, cursor.lastrowid)

    def update(
        self,
        tenant: str,
        target: IntegrationTarget,
        *,
        expected_version: int,
        idempotency_key: str | None = None,
        request_hash: str = "",
        response: str = "",
    ) -> StoredTarget:
        """Replace a target whose version is still ``expected_version``; the version goes up by one.

        With ``idempotency_key`` the answer is recorded in the same transaction (a rotation's replay).
        """
        assert target.id is not None
        body = target.model_dump_json(by_alias=True, context={"reveal_secrets": True})
        with self._target_write(tenant, target.name, idempotency_key, request_hash, response) as db:
            cursor = db.execute(
                "UPDATE targets SET name = ?, body = ?, version = version + 1"
                " WHERE tenant = ? AND id = ? AND version = ?",
                (target.name, body, tenant, target.id, expected_version),
            )
            if cursor.rowcount != 1:
                raise StaleVersionError(target.id)
            row = db.execute("SELECT seq FROM targets WHERE id = ?", (target.id,)).fetchone()
        return StoredTarget(target, expected_version + 1, int(row[0]))

    def delete(self, tenant: str, target_id: str, *, expected_version: int | None = None) -> None:
        """Delete a target; StaleVersionError when it is gone or changed since ``expected_version``."""
        query = "DELETE FROM targets WHERE tenant = ? AND id = ?"
        params: list[object] = [tenant, target_id]
        if expected_version is not None:
            query += " AND version = ?"
            params.append(expected_version)
        with self._transaction() as db:
            if db.execute(query, params).rowcount != 1:
                raise StaleVersionError(target_id)

    def idempotency_record(self, tenant: str, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT request_hash, response FROM idempotency WHERE tenant = ? AND key = ?", (tenant, key)
            ).fetchone()
        return IdempotencyRecord(row[0], row[1]) if row is not None else None
