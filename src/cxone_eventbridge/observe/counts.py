"""The delivery figures two observers keep from the same records: attempts, deliveries, retries, dead letters.

The status view (``observe.status``) keeps them per target since the router started, the dashboard's
timeline (``observe.timeline``) per second of the last few minutes. What a record counts as is decided
here, once; each observer chooses where it counts (which target, which second) and keeps what only it
needs beside (the status view: who is being retried and why a circuit opened; the timeline: accepted
events and the queue's depths). ``add_latency`` is theirs too: a bounded window of recent attempts for the
status view, a bounded sample of one second for the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxone_eventbridge.observe.events import (
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    ObservedEvent,
)

# The records that carry a delivery's progress (each names its target).
DeliveryRecord = DeliveryAttempted | DeliverySucceeded | DeliveryRetryScheduled | DeliveryDeadLettered
DELIVERY_RECORDS = (DeliveryAttempted, DeliverySucceeded, DeliveryRetryScheduled, DeliveryDeadLettered)


@dataclass(slots=True, kw_only=True)
class DeliveryCounts:
    """Attempts made, deliveries done, retries scheduled and deliveries dead-lettered."""

    attempts: int = 0
    delivered: int = 0
    retries: int = 0
    dead_lettered: int = 0

    def add_latency(self, latency_s: float) -> None:
        """Keep one attempt's latency: these counts keep none; each observer keeps its own bounded sample."""

    def count(self, record: ObservedEvent) -> None:
        """Count one record; records that are not about a delivery's progress change nothing."""
        if isinstance(record, DeliveryAttempted):
            self.add_latency(record.latency_s)
            self.attempts += 1
        elif isinstance(record, DeliverySucceeded):
            self.delivered += 1
        elif isinstance(record, DeliveryRetryScheduled):
            self.retries += 1
        elif isinstance(record, DeliveryDeadLettered):
            self.dead_lettered += 1
