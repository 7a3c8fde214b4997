"""Frozen records of what happened, and the bus that hands them to observers (metrics, audit, logs).

Observers receive immutable records and cannot break the caller: an observer that raises is logged and
skipped, never propagated into a delivery or an ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventAccepted:
    """An event was durably queued for ``targets``."""

    event_id: str
    targets: tuple[str, ...]
    priority: int
    at: float


@dataclass(frozen=True, slots=True)
class IngestRejected:
    """An ingest request (or one item of it) was refused; ``reason`` is a short label for metrics."""

    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class DeliveryAttempted:
    """One HTTP attempt finished. ``outcome`` is a ``retry.Outcome`` value or ``error``."""

    event_id: str
    delivery_id: str
    target: str
    attempt: int
    outcome: str
    status_code: int | None
    latency_s: float
    error: str | None
    at: float
    delivery_key: str = ""  # the queue's handle of the delivery (the event archive records the attempt by it)


@dataclass(frozen=True, slots=True)
class DeliverySucceeded:
    """A delivery reached its target. ``end_to_end_s`` is accept-to-delivered."""

    event_id: str
    delivery_id: str
    target: str
    attempts: int
    end_to_end_s: float
    at: float


@dataclass(frozen=True, slots=True)
class DeliveryRetryScheduled:
    """A delivery will be attempted again after ``delay_s``.

    ``reason`` describes the failure for people; ``status_code`` and ``error`` are the failed attempt's,
    from which metrics derive a label of a fixed set (``observe.reasons``).
    """

    event_id: str
    delivery_id: str
    target: str
    attempt: int
    delay_s: float
    reason: str
    at: float
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryDeadLettered:
    """A delivery gave up: permanent failure, retries spent, target gone, or expired."""

    event_id: str
    delivery_id: str
    target: str
    attempts: int
    reason: str
    last_status: int | None
    at: float
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class CircuitStateChanged:
    """A target's circuit breaker moved to ``state`` (closed, open, half_open).

    ``until`` is when an open circuit lets its next probe through (None in the other states).
    """

    target: str
    state: str
    at: float
    until: float | None = None


@dataclass(frozen=True, slots=True)
class TargetChanged:
    """A control-plane change made through the CLI or the library (create, update, delete, test, apply)."""

    action: str
    target: str
    target_id: str | None
    at: float
    details: dict[str, Any] = field(default_factory=dict)


ObservedEvent = (
    EventAccepted
    | IngestRejected
    | DeliveryAttempted
    | DeliverySucceeded
    | DeliveryRetryScheduled
    | DeliveryDeadLettered
    | CircuitStateChanged
    | TargetChanged
)
Observer = Callable[[ObservedEvent], None]


class ObserverBus:
    """Hands each record to every subscribed observer, in order; a failing observer never fails the caller."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        """Stop handing records to ``observer`` (a watcher that waited for one record: ``router probe``)."""
        self._observers.remove(observer)

    def publish(self, event: ObservedEvent) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # the observer boundary: metrics or audit must never break a delivery
                log.exception("observer %r failed on %s", observer, type(event).__name__)
