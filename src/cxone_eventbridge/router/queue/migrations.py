"""Versioned schema migrations, the same rules for every backend.

A backend's schema is a numbered list of :class:`Migration` steps; the database records the highest
step applied. ``cxeb router migrate`` (or opening with ``migrate=True``) applies the missing steps in
order, each in one transaction. A database whose version is *newer* than this code knows is refused
outright: an older router would otherwise write rows a newer schema does not expect.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cxone_eventbridge.exceptions import QueueSchemaError

_log = logging.getLogger("cxone_eventbridge.operations")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version (1, 2, ...), what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


def latest_version(migrations: Sequence[Migration]) -> int:
    return migrations[-1].version if migrations else 0


def pending_migrations(
    current: int, migrations: Sequence[Migration], *, backend: str, migrate: bool
) -> list[Migration]:
    """The steps to apply to a database at ``current``; QueueSchemaError when it is newer, or behind and
    ``migrate`` is off."""
    latest = latest_version(migrations)
    if current > latest:
        raise QueueSchemaError(
            f"the {backend} queue's schema is at version {current}, newer than this cxeb knows ({latest});"
            " upgrade cxeb before running a router on it"
        )
    missing = [m for m in migrations if m.version > current]
    if missing and not migrate:
        raise QueueSchemaError(
            f"the {backend} queue's schema is at version {current}; this cxeb needs version {latest}."
            " Run `cxeb router migrate` (or start with --migrate) first"
        )
    return missing


def log_migrated(backend: str, where: str, before: int, after: int) -> None:
    """One structured log line for a schema migration that was applied (``operation`` = ``migration``)."""
    _log.info(
        "%s queue %s migrated from schema version %d to %d",
        backend,
        where,
        before,
        after,
        extra={"operation": "migration", "backend": backend, "from_version": before, "to_version": after},
    )
