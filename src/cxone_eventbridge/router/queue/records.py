"""What goes into and comes out of a delivery queue: frozen records, the delivery states, priorities.

Every backend speaks these records; none of them exposes how a backend stores a delivery. A
:class:`Delivery`'s ``key`` is an opaque string (a row id in one backend, anything in another) and its
``lease_token`` names the one lease it was handed out under: only that lease can complete it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5


class DeliveryState(IntEnum):
    """Where a delivery is in its life; the integer is what every backend stores."""

    PENDING = 0  # waiting for next_attempt_at, then for a lease
    LEASED = 1  # handed to one worker until its lease ends
    DELIVERED = 2
    DEAD = 3  # gave up; kept, with its reason, until replayed or purged

    @property
    def label(self) -> str:
        return self.name.lower()


class DeadLetterReason(StrEnum):
    """Why a delivery gave up; short labels suitable for metrics."""

    PERMANENT = "permanent"  # a 4xx the policy does not retry
    GONE = "gone"  # 410: the target is disabled too
    RETRIES_EXHAUSTED = "retries_exhausted"
    EXPIRED = "expired"  # waited longer than the maximum event age
    EGRESS_DENIED = "egress_denied"  # the SSRF guard refused the destination
    AUTH_FAILED = "auth_failed"  # the target's OAuth token endpoint gave no token (permanently or every retry)
    TARGET_REMOVED = "target_removed"  # the target was removed; replayable if it comes back


class TargetHold(StrEnum):
    """Why a target's deliveries are held in the queue: the reason its disabled-target record carries."""

    GONE = "gone"  # its endpoint answered 410 Gone; `cxeb router enable` releases it
    PAUSED = "paused"  # an operator paused it; `cxeb router resume` releases it, and its work does not expire


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
class TargetLimits:
    """A target's delivery limits, held across every router sharing the queue (None: no limit)."""

    max_in_flight: int | None = None
    rate_per_s: float | None = None

    @property
    def limited(self) -> bool:
        return self.max_in_flight is not None or self.rate_per_s is not None


@dataclass(frozen=True, slots=True)
class SharedCircuit:
    """A target's circuit as every router sharing the queue sees it: open until ``open_until`` (the
    caller's clock), then half-open (one delivery in flight across all routers) until a success closes
    it; ``open_s`` is how long it was last opened for (a failed probe doubles it)."""

    open_until: float
    open_s: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased delivery.

    ``key`` is the backend's opaque handle and ``lease_token`` the lease it was handed out under;
    ``attempts`` counts attempts made before this one. ``lease_until`` and ``not_before`` are in the
    caller's clock: a rate-limited target's delivery must not be sent before ``not_before``. ``probe``
    marks the one delivery let through a half-open shared circuit.
    """

    key: str
    lease_token: str
    delivery_id: str
    event_id: str
    target: str
    priority: int
    body: bytes
    attempts: int
    accepted_at: float
    lease_until: float
    not_before: float = 0.0
    probe: bool = False  # leased through a half-open shared circuit: its outcome closes or reopens it


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

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> DeadLetter:
        """A dead letter from a row in the column order every backend selects (id, event, target, ...)."""
        return cls(
            delivery_id=row[0],
            event_id=row[1],
            target=row[2],
            priority=row[3],
            attempts=row[4],
            reason=row[5] or "",
            last_status=row[6],
            last_error=row[7],
            accepted_at=row[8],
            dead_at=row[9],
        )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts by state, with pending work broken down by target."""

    pending: int
    leased: int
    delivered: int
    dead: int
    pending_by_target: Mapping[str, int]
    oldest_pending_at: float | None
