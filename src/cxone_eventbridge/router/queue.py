"""The durable delivery queue: one interface, frozen records, any backend.

A queue holds *deliveries*: one per (event, target). The dispatcher only ever talks to
:class:`DeliveryQueue`, so a distributed backend (Redis Streams: ``XADD`` for put, ``XREADGROUP`` +
``XAUTOCLAIM`` for lease and lease expiry, ``XACK`` for ack, a sorted set for ``next_attempt_at``) can
serve in place of the embedded SQLite one without touching the dispatcher.

Semantics every backend keeps:

- ``put`` writes the events and all their deliveries in one durable transaction and only then returns;
  it is idempotent on (event id, target).
- ``lease`` hands out ready deliveries (``next_attempt_at <= now``) for a bounded time; a lease that is
  neither acked, rescheduled, released nor dead-lettered before it ends makes the delivery leasable again.
- ``ack``, ``reschedule`` and ``dead_letter`` each record one attempt; ``release`` gives a lease back
  without spending an attempt (shutdown, an open circuit).
- Dead letters keep their reason, last status and attempts, and ``replay`` makes them pending again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5


class DeliveryState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DELIVERED = "delivered"
    DEAD = "dead"


class DeadLetterReason(StrEnum):
    """Why a delivery gave up; short labels suitable for metrics."""

    PERMANENT = "permanent"  # a 4xx the policy does not retry
    GONE = "gone"  # 410: the target is disabled too
    RETRIES_EXHAUSTED = "retries_exhausted"
    EXPIRED = "expired"  # waited longer than the maximum event age
    EGRESS_DENIED = "egress_denied"  # the SSRF guard refused the destination
    INVALID_TARGET = "invalid_target"  # the target cannot be delivered to as configured


def delivery_id_for(event_id: str, target: str) -> str:
    """The Standard Webhooks ``webhook-id`` of the delivery of ``event_id`` to ``target``.

    Derived, not random, so it is the same on every attempt, after a crash and after a replay, and a
    receiver can use it to drop duplicates.
    """
    digest = hashlib.sha256(f"{event_id}\x00{target}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An accepted event and the targets it matched, ready to be written."""

    event_id: str
    body: bytes
    priority: int
    targets: tuple[str, ...]
    accepted_at: float


@dataclass(frozen=True, slots=True)
class PutResult:
    """What ``put`` did with one event: the targets that got a new delivery (none for a duplicate)."""

    event_id: str
    created: tuple[str, ...]

    @property
    def duplicate(self) -> bool:
        return not self.created


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased delivery. ``key`` is the backend's handle; ``attempts`` counts attempts made before."""

    key: int
    delivery_id: str
    event_id: str
    target: str
    priority: int
    body: bytes
    attempts: int
    accepted_at: float
    lease_until: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that gave up, with what is known about why."""

    delivery_id: str
    event_id: str
    target: str
    priority: int
    attempts: int
    reason: str
    last_status: int | None
    last_error: str | None
    accepted_at: float
    dead_at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts by state, with pending work broken down by target."""

    pending: int
    leased: int
    delivered: int
    dead: int
    pending_by_target: Mapping[str, int]
    oldest_pending_at: float | None


@runtime_checkable
class DeliveryQueue(Protocol):
    """What the dispatcher needs from a durable queue. Times are Unix seconds from the injected clock."""

    async def open(self) -> None:
        """Create or open the storage; idempotent."""

    async def close(self) -> None:
        """Finish queued writes and release the storage."""

    async def put(self, events: Sequence[QueuedEvent]) -> list[PutResult]:
        """Write events and their deliveries in one durable transaction (idempotent on event id, target)."""
        ...

    async def lease(self, *, capacity: Mapping[str, int], limit: int, now: float, lease_s: float) -> list[Delivery]:
        """Up to ``limit`` ready deliveries, at most ``capacity[target]`` per target; others are not leased."""
        ...

    async def ack(self, delivery: Delivery, *, now: float, status: int | None = None) -> None:
        """The delivery succeeded (one attempt)."""

    async def reschedule(
        self,
        delivery: Delivery,
        *,
        next_attempt_at: float,
        now: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        """The attempt failed and will be retried at ``next_attempt_at`` (one attempt spent)."""

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give leases back without spending an attempt."""

    async def dead_letter(
        self,
        delivery: Delivery,
        *,
        reason: str,
        now: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        """The delivery gives up after this attempt (one attempt spent)."""

    async def expire(self, *, now: float, max_age_s: float) -> list[DeadLetter]:
        """Dead-letter (``expired``) every pending delivery accepted more than ``max_age_s`` ago."""
        ...

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        ...

    async def replay(self, *, now: float, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Make dead letters pending again (all, a target's, or the named ones); returns how many."""
        ...

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Delete dead letters for good (all, a target's, or the named ones); returns how many."""
        ...

    async def stats(self) -> QueueStats:
        """Counts by state."""
        ...

    async def prune(self, *, now: float, retention_s: float) -> int:
        """Delete delivered rows older than ``retention_s`` (and events left without deliveries)."""
        ...

    async def reclaim(self) -> int:
        """Make this owner's previous incarnations' leases pending again at once; returns how many."""
        ...

    async def disable_target(self, name: str, *, reason: str, now: float) -> None:
        """Remember durably that a target is disabled (410 Gone); its deliveries wait until it is enabled."""

    async def enable_target(self, name: str) -> bool:
        """Forget that a target is disabled; True when it was."""
        ...

    async def disabled_targets(self) -> dict[str, str]:
        """Disabled targets and why."""
        ...
