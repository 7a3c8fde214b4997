"""The delivery queue's seam, split by job: what a backend must do, and nothing about how.

- :class:`WorkCycle` — what the dispatcher does all day: put, lease, renew, ack, reschedule, release,
  dead-letter.
- :class:`DeadLetterStore` — what an operator does with deliveries that gave up: list, replay, purge.
- :class:`Maintenance` — what runs in the background: expire, prune, reclaim, stats.
- :class:`TargetStateStore` — a target's state shared by every router on the queue: disabled (410), its
  circuit (open, half-open).

:class:`DeliveryQueue` is all four plus opening and closing; a backend implements it whole.

:class:`EventArchive` is kept beside a backend, in the same database (``sqlite/archive.py``,
``postgres/archive.py``): the events a router accepted, kept for the archive period, the history of every
delivery attempt, and replay jobs. It is a separate seam so that a router without an archive pays
nothing for it.

Semantics every backend keeps (the contract suite in ``tests/router/queue/`` checks each one):

- ``put`` writes the events and all their deliveries in one durable transaction and only then returns;
  it is idempotent on (event id, target).
- ``lease`` hands out ready deliveries for ``lease_s`` seconds under a fresh lease token. The backend
  only *finds* ready candidates; the one :class:`~.scheduler.FairScheduler` chooses among them, so
  priority fairness and per-target caps are the same on every backend. It returns up to ``limit``
  deliveries (no hidden cut), never one of a disabled target, and keeps each target's
  :class:`~.records.TargetLimits` across every router sharing the queue.
- Only the holder of the current lease completes a delivery: ``ack``, ``reschedule``, ``release``,
  ``dead_letter`` and ``renew`` with a lease token that is no longer current change nothing.
- ``ack``, ``reschedule`` and ``dead_letter`` each record one attempt; ``release`` gives a lease back
  without spending one. Times come from the backend (a shared database's clock where several machines
  share it); the times on a :class:`~.records.Delivery` are converted to the caller's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cxone_eventbridge.router.queue.archive_records import (
    ArchivedEvent,
    AttemptRecord,
    EventHistory,
    ReplayJob,
)
from cxone_eventbridge.router.queue.records import (
    DeadLetter,
    Delivery,
    PutResult,
    QueuedEvent,
    QueueStats,
    SharedCircuit,
    TargetLimits,
)

NO_LIMITS: Mapping[str, TargetLimits] = {}


@runtime_checkable
class WorkCycle(Protocol):
    """Put work in, lease it, and settle each lease."""

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        """Write events and their deliveries in one durable transaction (idempotent on event id, target)."""
        ...

    async def lease(
        self,
        wants: Mapping[str, int],
        *,
        limit: int,
        lease_s: float,
        limits: Mapping[str, TargetLimits] = NO_LIMITS,
    ) -> list[Delivery]:
        """Up to ``limit`` ready deliveries, at most ``wants[target]`` per target; other targets get none."""
        ...

    async def renew(self, deliveries: Sequence[Delivery], *, lease_s: float) -> list[Delivery]:
        """Extend current leases by ``lease_s`` from now; the deliveries still held, with their new end."""
        ...

    async def ack(self, delivery: Delivery, *, status: int | None = None) -> None:
        """The delivery succeeded (one attempt)."""

    async def reschedule(
        self, delivery: Delivery, *, delay_s: float, last_status: int | None, last_error: str | None
    ) -> None:
        """The attempt failed and will be retried ``delay_s`` from now (one attempt spent)."""

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give leases back without spending an attempt."""

    async def dead_letter(
        self, delivery: Delivery, *, reason: str, last_status: int | None, last_error: str | None
    ) -> None:
        """The delivery gives up after this attempt (one attempt spent)."""

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process may have made work ready (a no-op for one process)."""


@runtime_checkable
class DeadLetterStore(Protocol):
    """Deliveries that gave up."""

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        ...

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Make dead letters pending again (all, a target's, or the named ones); returns how many."""
        ...

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Delete dead letters for good (all, a target's, or the named ones); returns how many."""
        ...


@runtime_checkable
class Maintenance(Protocol):
    """Background upkeep."""

    async def expire(self, *, max_age_s: float) -> list[DeadLetter]:
        """Dead-letter (``expired``) every pending delivery accepted more than ``max_age_s`` ago, except those
        of targets disabled with the reason ``paused`` (``TargetHold.PAUSED``): they wait for the resume."""
        ...

    async def dead_letter_target(self, target: str, *, reason: str) -> list[DeadLetter]:
        """Dead-letter every pending (not leased) delivery of ``target`` at once, with ``reason``.

        For a target that was removed: its work would otherwise wait until it expires. Leased deliveries
        are left to their holder (the router settles them when their attempt ends).
        """
        ...

    async def prune(self, *, retention_s: float) -> int:
        """Delete delivered rows older than ``retention_s`` (and events left without deliveries)."""
        ...

    async def reclaim(self) -> int:
        """Make leases pending again that expired or that a previous run of this owner held; how many."""
        ...

    async def stats(self) -> QueueStats:
        """Counts by state."""
        ...


@runtime_checkable
class TargetStateStore(Protocol):
    """A target's state that every router sharing the queue sees."""

    async def disable_target(self, name: str, *, reason: str) -> None:
        """Remember that a target is disabled (410 Gone); its deliveries are not leased until enabled."""

    async def enable_target(self, name: str) -> bool:
        """Forget that a target is disabled; True when it was."""
        ...

    async def disabled_targets(self) -> dict[str, str]:
        """Disabled targets and why."""
        ...

    async def open_circuit(self, name: str, *, open_for_s: float) -> None:
        """Open a target's circuit for every router: none of its deliveries is leased for ``open_for_s``,
        then one at a time (half-open) until ``close_circuit``."""

    async def close_circuit(self, name: str) -> None:
        """Close a target's shared circuit (a delivery succeeded)."""

    async def probe_circuit(self, name: str) -> bool:
        """End an open shared circuit's wait now, so its probe is leased at once (``cxeb router probe``); its
        last open period is kept for the next doubling. True when the target had a shared circuit."""
        ...

    async def circuits(self) -> dict[str, SharedCircuit]:
        """Targets whose shared circuit is open or half-open."""
        ...


@runtime_checkable
class DeliveryQueue(WorkCycle, DeadLetterStore, Maintenance, TargetStateStore, Protocol):
    """A whole backend: the four jobs, plus opening and closing its storage."""

    async def open(self) -> None:
        """Open the storage (and check its schema); idempotent."""

    async def close(self) -> None:
        """Finish queued writes and release the storage."""


@runtime_checkable
class EventArchive(Protocol):
    """Archived events, the attempt history and replay jobs, in the queue's own database.

    Semantics every backend keeps (the contract suite checks each one):

    - ``record_attempt`` returns at once; the attempt is written with the next group of queue writes (on
      SQLite in the same transaction as the ack, retry or dead letter that follows it), so recording
      costs the hot path no round trip of its own.
    - ``archived`` pages through the events accepted in ``[since, until)`` in (accepted_at, seq) order,
      never a replay's own events.
    - ``prune_archive`` deletes what is older than ``keep_s``: events without deliveries, attempts, and
      finished replay jobs. Events that still have deliveries go with their last delivery, as before.
    - ``claim_replays`` hands each running job to one router: its own jobs, and those whose runner has
      not sent a heartbeat since ``stale_before``.
    """

    def record_attempt(self, attempt: AttemptRecord) -> None:
        """Write ``attempt`` with the next group of queue writes (never blocks, never raises for storage)."""

    async def flush(self) -> None:
        """Wait until every attempt recorded so far is written."""

    async def history(self, event_id: str) -> EventHistory | None:
        """The event, its deliveries and its replays' deliveries, each with every recorded attempt."""
        ...

    async def archived(
        self, *, since: float, until: float, after: tuple[float, int] | None = None, limit: int = 100
    ) -> list[ArchivedEvent]:
        """Up to ``limit`` archived events accepted in ``[since, until)``, after the (accepted_at, seq) ``after``."""
        ...

    async def count_archived(self, *, since: float, until: float) -> int:
        """How many archived events were accepted in ``[since, until)``."""
        ...

    async def mark_replays(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Record that each (replay event id, original event id) is a replay of the original (idempotent)."""

    async def prune_archive(self, *, keep_s: float) -> int:
        """Delete archived events, attempts and finished replay jobs older than ``keep_s``; how many rows."""
        ...

    async def save_replay(self, job: ReplayJob) -> None:
        """Create or update a replay job."""

    async def replay_job(self, replay_id: str) -> ReplayJob | None:
        """One replay job, or None."""
        ...

    async def replay_jobs(self, *, limit: int = 20) -> list[ReplayJob]:
        """The newest replay jobs, newest first."""
        ...

    async def claim_replays(self, *, runner: str, stale_before: float) -> list[ReplayJob]:
        """Take over the running jobs this router should run (see the class docstring); they name ``runner``."""
        ...
