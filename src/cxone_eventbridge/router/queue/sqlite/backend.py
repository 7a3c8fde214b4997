"""The embedded delivery queue: one SQLite file in WAL mode, written through group commit.

Durability: ``synchronous=FULL`` by default, so a committed ``put`` survives a crash of the machine, not
only of the process; :mod:`.executor` keeps that from being the bottleneck. The backend is split as the
queue's seam is (:mod:`..protocols`), one module per job over the shared file (:mod:`.store`):

- :mod:`.work_cycle` — put, lease, renew, ack, reschedule, release, dead-letter;
- :mod:`.dead_letters` — list, replay, purge;
- :mod:`.maintenance` — expire, dead-letter a removed target's work, prune, reclaim, stats;
- :mod:`.target_state` — disabled targets and shared circuits, kept in the file.
"""

from __future__ import annotations

from cxone_eventbridge.router.queue.sqlite.dead_letters import SQLiteDeadLetters
from cxone_eventbridge.router.queue.sqlite.maintenance import SQLiteMaintenance
from cxone_eventbridge.router.queue.sqlite.store import Synchronous
from cxone_eventbridge.router.queue.sqlite.target_state import SQLiteTargetState
from cxone_eventbridge.router.queue.sqlite.work_cycle import SQLiteWorkCycle

__all__ = ["SQLiteQueue", "Synchronous"]


class SQLiteQueue(SQLiteWorkCycle, SQLiteDeadLetters, SQLiteMaintenance, SQLiteTargetState):
    """A :class:`~cxone_eventbridge.router.queue.DeliveryQueue` in one SQLite file (see :class:`.store.SQLiteStore`
    for its options)."""
