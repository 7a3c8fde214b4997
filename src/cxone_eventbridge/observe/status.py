"""A per-target status view (delivered, failed, retries, p50/p99 attempt latency, circuit) kept by an observer.

Prometheus histograms answer "how many under 100 ms" but not "what is p99 right now" without a query
engine, so the status view keeps a bounded window of recent attempt latencies per target and computes
percentiles from it on demand. ``cxeb router status`` and the dashboard show this together with the
queue's depths.

An open circuit says why and until when: the tracker counts each target's consecutive failed attempts
and remembers the last one, so when the circuit opens it can say "5 failed attempts in a row, the last:
status 503" and when the next probe goes out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cxone_eventbridge.observe.counts import DELIVERY_RECORDS, DeliveryCounts, DeliveryRecord
from cxone_eventbridge.observe.events import (
    CircuitStateChanged,
    DeliveryAttempted,
    DeliveryRetryScheduled,
    EventAccepted,
    ObservedEvent,
)
from cxone_eventbridge.wire import iso_time

DEFAULT_WINDOW = 1024
_FAILED_OUTCOMES = frozenset({"retry", "error"})  # what the circuit counts as a failure (router.circuit)


def percentile(samples: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``samples``; None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class TargetDeliveryStatus(DeliveryCounts):
    """What one target's deliveries have done since the router started (the counts: ``DeliveryCounts``)."""

    target: str
    queued: int = 0
    retrying: int = 0
    circuit: str = "closed"
    circuit_since: float | None = None
    circuit_until: float | None = None
    circuit_reason: str | None = None
    consecutive_failures: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: float | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=DEFAULT_WINDOW))

    def add_latency(self, latency_s: float) -> None:
        self.latencies.append(latency_s)  # the deque keeps the last ``window``

    def follow(self, record: DeliveryRecord) -> None:
        """Keep what the counts do not say: the last attempt, failures in a row, deliveries being retried."""
        if isinstance(record, DeliveryAttempted):
            self.last_status = record.status_code
            self.last_error = record.error
            self.last_attempt_at = record.at
            if record.outcome in _FAILED_OUTCOMES:
                self.consecutive_failures += 1
            elif record.outcome != "refused":  # nothing was sent: it says nothing about the endpoint
                self.consecutive_failures = 0
        elif isinstance(record, DeliveryRetryScheduled):
            if record.attempt == 1:  # its first failure: from now on it is one delivery being retried
                self.retrying += 1
        elif record.attempts > 1:  # delivered or dead-lettered after retries: no longer being retried
            self.retrying = max(0, self.retrying - 1)

    def last_failure(self) -> str:
        """The last attempt's failure in words (a status or the error)."""
        if self.last_status is not None:
            return f"status {self.last_status}"
        return self.last_error or "no answer"

    def to_wire(self) -> dict[str, Any]:
        """The JSON shape of one row of ``GET /v1/status``'s ``targets``."""
        samples = list(self.latencies)
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        return {
            "target": self.target,
            "queued": self.queued,
            "delivered": self.delivered,
            "failed": self.dead_lettered,
            "retries": self.retries,
            "retrying": self.retrying,
            "attempts": self.attempts,
            "p50Ms": None if p50 is None else round(p50 * 1000, 3),
            "p99Ms": None if p99 is None else round(p99 * 1000, 3),
            "circuit": self.circuit,
            "circuitSince": iso_time(self.circuit_since),
            "circuitUntil": iso_time(self.circuit_until),
            "circuitReason": self.circuit_reason,
            "lastStatus": self.last_status,
            "lastError": self.last_error,
            "lastAttemptAt": iso_time(self.last_attempt_at),
        }


class StatusTracker:
    """Keeps a ``TargetDeliveryStatus`` per target; subscribe ``observe`` to the router's bus.

    The audit log snapshots these counts in each delivery line and folds every record it observes into
    the tracker first, so that the snapshot includes the outcome it is written for whatever order the two
    were subscribed in; a record folded twice in a row (by the audit log, then by the bus) counts once.
    """

    def __init__(self, *, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._window = window
        self._targets: dict[str, TargetDeliveryStatus] = {}
        self._last_folded: ObservedEvent | None = None
        self.events_accepted = 0

    def target(self, name: str) -> TargetDeliveryStatus:
        """The live status of the target called ``name`` (zero counts when it has seen no traffic)."""
        return self._get(name)

    def _get(self, target: str) -> TargetDeliveryStatus:
        status = self._targets.get(target)
        if status is None:
            status = TargetDeliveryStatus(target, latencies=deque(maxlen=self._window))
            self._targets[target] = status
        return status

    def observe(self, event: ObservedEvent) -> None:
        """Fold one record into the per-target counters; the record just folded is not folded again."""
        if event is self._last_folded:
            return
        self._last_folded = event
        if isinstance(event, DELIVERY_RECORDS):
            status = self._get(event.target)
            status.count(event)
            status.follow(event)
        elif isinstance(event, CircuitStateChanged):
            self._circuit_changed(event)
        elif isinstance(event, EventAccepted):
            self.events_accepted += 1
            for target in event.targets:
                self._get(target).queued += 1

    def _circuit_changed(self, event: CircuitStateChanged) -> None:
        status = self._get(event.target)
        previous = status.circuit
        status.circuit = event.state
        status.circuit_since = event.at
        status.circuit_until = event.until
        if event.state == "open":
            if previous == "half_open":
                status.circuit_reason = f"the probe failed: {status.last_failure()}"
            else:
                status.circuit_reason = (
                    f"{status.consecutive_failures} failed attempts in a row, the last: {status.last_failure()}"
                )
        elif event.state == "closed":
            status.circuit_reason = None

    def ensure(self, targets: list[str]) -> None:
        """Show configured targets that have seen no traffic yet (with zero counts)."""
        for target in targets:
            self._get(target)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every target's status, sorted by name."""
        return [self._targets[name].to_wire() for name in sorted(self._targets)]

    def get(self, target: str) -> TargetDeliveryStatus | None:
        """One target's status, if it has any."""
        return self._targets.get(target)
