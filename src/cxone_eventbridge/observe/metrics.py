"""Prometheus metrics for the router: an observer of ``observe.events`` records on its own registry.

Every series that concerns a target carries the label ``target`` = the target's name. The registry is
per instance (never the global default), so tests and several routers in one process do not collide.

==========================================  =========  ==================================================
metric                                      type       labels
==========================================  =========  ==================================================
cxeb_events_accepted_total                  counter    priority
cxeb_deliveries_enqueued_total              counter    target
cxeb_deliveries_total                       counter    target, outcome (delivered | dead_lettered)
cxeb_delivery_attempts_total                counter    target, outcome (success | retry | permanent | gone
                                                       | error)
cxeb_delivery_retries_total                 counter    target, reason
cxeb_delivery_attempt_duration_seconds      histogram  target
cxeb_delivery_end_to_end_seconds            histogram  target
cxeb_dead_letters_total                     counter    target, reason
cxeb_circuit_state                          stateset   target, cxeb_circuit_state (closed | half_open | open)
cxeb_queue_depth                            gauge      state (refreshed from the queue's stats at scrape)
cxeb_ingest_rejections_total                counter    reason
==========================================  =========  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from cxone_eventbridge.observe.events import (
    CircuitStateChanged,
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    EventAccepted,
    IngestRejected,
    ObservedEvent,
)

CIRCUIT_STATES = ("closed", "half_open", "open")
# One HTTP attempt: from a fast loopback receiver (ms) to a slow endpoint at the timeout (tens of s).
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Accept-to-delivered includes retries, which back off for minutes or hours.
END_TO_END_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class RouterMetrics:
    """Counts what the router does; subscribe ``observe`` to the router's ``ObserverBus``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "cxeb_events_accepted", "Events durably accepted, by request priority.", ["priority"], registry=r
        )
        self.deliveries_enqueued = Counter(
            "cxeb_deliveries_enqueued", "Deliveries queued (one per matching target).", ["target"], registry=r
        )
        self.deliveries = Counter(
            "cxeb_deliveries",
            "Deliveries that finished, by target and outcome (delivered or dead_lettered).",
            ["target", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "cxeb_delivery_attempts",
            "HTTP delivery attempts, by target and outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "cxeb_delivery_retries", "Retries scheduled, by target and reason.", ["target", "reason"], registry=r
        )
        self.attempt_seconds = Histogram(
            "cxeb_delivery_attempt_duration_seconds",
            "Duration of one HTTP delivery attempt.",
            ["target"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "cxeb_delivery_end_to_end_seconds",
            "Time from an event's acceptance to its delivery, retries included.",
            ["target"],
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "cxeb_dead_letters", "Deliveries moved to the dead-letter list.", ["target", "reason"], registry=r
        )
        self.circuit = Enum(
            "cxeb_circuit_state",
            "Each target's circuit breaker state.",
            ["target"],
            states=list(CIRCUIT_STATES),
            registry=r,
        )
        self.queue_depth = Gauge("cxeb_queue_depth", "Deliveries in the queue, by state.", ["state"], registry=r)
        self.ingest_rejections = Counter(
            "cxeb_ingest_rejections", "Ingest requests refused, by reason.", ["reason"], registry=r
        )
        self._depth_states: set[str] = set()

    def observe(self, event: ObservedEvent) -> None:
        """Update the series a record concerns; records it does not know are ignored."""
        if isinstance(event, DeliveryAttempted):
            self.attempts.labels(event.target, event.outcome).inc()
            self.attempt_seconds.labels(event.target).observe(max(0.0, event.latency_s))
        elif isinstance(event, DeliverySucceeded):
            self.deliveries.labels(event.target, "delivered").inc()
            self.end_to_end_seconds.labels(event.target).observe(max(0.0, event.end_to_end_s))
        elif isinstance(event, DeliveryRetryScheduled):
            self.retries.labels(event.target, event.reason).inc()
        elif isinstance(event, DeliveryDeadLettered):
            self.deliveries.labels(event.target, "dead_lettered").inc()
            self.dead_letters.labels(event.target, event.reason).inc()
        elif isinstance(event, EventAccepted):
            self.events_accepted.labels(str(event.priority)).inc()
            for target in event.targets:
                self.deliveries_enqueued.labels(target).inc()
        elif isinstance(event, CircuitStateChanged):
            if event.state in CIRCUIT_STATES:
                self.circuit.labels(event.target).state(event.state)
        elif isinstance(event, IngestRejected):
            self.ingest_rejections.labels(event.reason).inc()

    def set_queue_depth(self, depths: Mapping[str, int]) -> None:
        """Refresh the queue gauge from the queue's stats; a state that emptied out reads 0, not stale."""
        for state in self._depth_states - set(depths):
            self.queue_depth.labels(state).set(0)
        for state, count in depths.items():
            self.queue_depth.labels(state).set(count)
        self._depth_states |= set(depths)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (serve it with ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
