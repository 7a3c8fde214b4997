"""Prometheus metrics for the router: an observer of ``observe.events`` records on its own registry.

Every series that concerns a target carries the label ``target`` = the target's name. The registry is
per instance (never the global default), so tests and several routers in one process do not collide.

Every label has a fixed, documented set of values, never free text: ``target`` is a configured target's
name, ``priority`` 0-9, ``outcome`` and ``state`` the values listed below, and ``reason`` of retries and
dead letters one of ``observe.reasons.FailureReason`` (``status_5xx``, ``status_429``, ``timeout``,
``connect``, ``tls``, ...). ``ensure_targets`` gives every configured target all its series at zero,
so a target that is idle, or a router that just restarted, still shows it (and ``rate()`` and
``increase()`` see the first event instead of a series appearing at 1).

==============================================  =========  ===============================================
metric                                          type       labels
==============================================  =========  ===============================================
cxeb_events_accepted_total                      counter    priority
cxeb_deliveries_enqueued_total                  counter    target
cxeb_deliveries_total                           counter    target, outcome (delivered | dead_lettered)
cxeb_delivery_attempts_total                    counter    target, outcome (success | retry | permanent |
                                                           gone | error | refused)
cxeb_delivery_retries_total                     counter    target, reason
cxeb_delivery_attempt_duration_seconds          histogram  target
cxeb_delivery_end_to_end_seconds                histogram  target
cxeb_dead_letters_total                         counter    target, reason
cxeb_circuit_state                              stateset   target, cxeb_circuit_state (closed | half_open |
                                                           open)
cxeb_circuit_next_probe_timestamp_seconds       gauge      target (Unix time; 0 unless the circuit is open)
cxeb_queue_depth                                gauge      state (pending | leased | delivered | dead),
                                                           refreshed from the queue's stats at scrape
cxeb_queue_pending                              gauge      target (pending deliveries, refreshed at scrape)
cxeb_queue_oldest_pending_age_seconds           gauge      (none; 0 when nothing is pending)
cxeb_ingest_rejections_total                    counter    reason (the error code of the refusal)
cxeb_audit_write_failures_total                 counter    (none; audit log writes that failed, read at scrape)
cxeb_audit_records_lost_total                   counter    (none; audit records those writes lost)
cxeb_audit_writing                              gauge      (none; 1 while the audit log writes, 0 while failing)
==============================================  =========  ===============================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cxone_eventbridge.observe.audit.writer import AuditHealth
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
from cxone_eventbridge.observe.reasons import FailureReason, dead_letter_reason, failure_reason

CIRCUIT_STATES = ("closed", "half_open", "open")
# router.delivery.AttemptOutcome's values (a test keeps the two equal; observe does not import router).
ATTEMPT_OUTCOMES = ("success", "retry", "permanent", "gone", "error", "refused")
DELIVERY_OUTCOMES = ("delivered", "dead_lettered")
QUEUE_STATES = ("pending", "leased", "delivered", "dead")
PRIORITIES = tuple(str(p) for p in range(10))
REASONS = tuple(reason.value for reason in FailureReason)
# One HTTP attempt: from a fast loopback receiver (ms) to a slow endpoint at the timeout (tens of s).
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Accept-to-delivered includes retries, which back off for minutes or hours.
END_TO_END_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class AuditHealthSource(Protocol):
    """What the metrics read from an audit log (``observe.audit.AuditLog`` provides it)."""

    def health(self) -> AuditHealth: ...


class _AuditCollector(Collector):
    """The audit log's failure counts, read from it at each scrape."""

    def __init__(self, audit: AuditHealthSource) -> None:
        self._audit = audit

    def collect(self) -> Iterator[Metric]:
        health = self._audit.health()
        failures = CounterMetricFamily("cxeb_audit_write_failures", "Audit log writes that failed.")
        failures.add_metric([], health.failed_writes)
        lost = CounterMetricFamily("cxeb_audit_records_lost", "Audit records lost in failed writes.")
        lost.add_metric([], health.records_lost)
        writing = GaugeMetricFamily("cxeb_audit_writing", "1 while the audit log writes, 0 while its writes fail.")
        writing.add_metric([], 0 if health.failing else 1)
        yield from (failures, lost, writing)


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
        self.next_probe = Gauge(
            "cxeb_circuit_next_probe_timestamp_seconds",
            "When an open circuit lets its next probe through (Unix time); 0 unless open.",
            ["target"],
            registry=r,
        )
        self.queue_depth = Gauge("cxeb_queue_depth", "Deliveries in the queue, by state.", ["state"], registry=r)
        self.queue_pending = Gauge(
            "cxeb_queue_pending", "Deliveries waiting to be sent, by target.", ["target"], registry=r
        )
        self.oldest_pending_age = Gauge(
            "cxeb_queue_oldest_pending_age_seconds",
            "Age of the oldest pending delivery's event; 0 when nothing is pending.",
            registry=r,
        )
        self.paused = Gauge(
            "cxeb_target_paused",
            "1 while an operator has paused the target (cxeb router pause), else 0.",
            ["target"],
            registry=r,
        )
        self.disabled = Gauge(
            "cxeb_target_disabled", "1 while the target is disabled after a 410 answer, else 0.", ["target"], registry=r
        )
        self.ingest_rejections = Counter(
            "cxeb_ingest_rejections", "Ingest requests refused, by reason.", ["reason"], registry=r
        )
        self._depth_states: set[str] = set()
        self._targets: set[str] = set()
        self._pending_targets: set[str] = set()
        for priority in PRIORITIES:
            self.events_accepted.labels(priority)
        for state in QUEUE_STATES:
            self.queue_depth.labels(state)

    def ensure_targets(self, names: Iterable[str]) -> None:
        """Give each configured target every series at zero; drop the series of targets no longer configured."""
        wanted = set(names)
        for name in wanted - self._targets:
            self._add_target(name)
        for name in self._targets - wanted:
            self._remove_target(name)
        self._targets = wanted

    def _add_target(self, name: str) -> None:
        self.deliveries_enqueued.labels(name)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(name, outcome)
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(name, outcome)
        for reason in REASONS:
            self.retries.labels(name, reason)
            self.dead_letters.labels(name, reason)
        self.attempt_seconds.labels(name)
        self.end_to_end_seconds.labels(name)
        self.circuit.labels(name)  # an Enum child starts in its first state, closed
        self.next_probe.labels(name)
        self.queue_pending.labels(name)
        self.paused.labels(name)
        self.disabled.labels(name)

    def _remove_target(self, name: str) -> None:
        for metric, label_sets in (
            (self.deliveries_enqueued, [(name,)]),
            (self.deliveries, [(name, outcome) for outcome in DELIVERY_OUTCOMES]),
            (self.attempts, [(name, outcome) for outcome in ATTEMPT_OUTCOMES]),
            (self.retries, [(name, reason) for reason in REASONS]),
            (self.dead_letters, [(name, reason) for reason in REASONS]),
            (self.attempt_seconds, [(name,)]),
            (self.end_to_end_seconds, [(name,)]),
            (self.circuit, [(name,)]),
            (self.next_probe, [(name,)]),
            (self.queue_pending, [(name,)]),
            (self.paused, [(name,)]),
            (self.disabled, [(name,)]),
        ):
            for labels in label_sets:
                with contextlib.suppress(KeyError):  # a series that was never created
                    metric.remove(*labels)

    def observe(self, event: ObservedEvent) -> None:
        """Update the series a record concerns; records it does not know are ignored."""
        if isinstance(event, DeliveryAttempted):
            self.attempts.labels(event.target, event.outcome).inc()
            self.attempt_seconds.labels(event.target).observe(max(0.0, event.latency_s))
        elif isinstance(event, DeliverySucceeded):
            self.deliveries.labels(event.target, "delivered").inc()
            self.end_to_end_seconds.labels(event.target).observe(max(0.0, event.end_to_end_s))
        elif isinstance(event, DeliveryRetryScheduled):
            self.retries.labels(event.target, failure_reason(event.status_code, event.error).value).inc()
        elif isinstance(event, DeliveryDeadLettered):
            self.deliveries.labels(event.target, "dead_lettered").inc()
            reason = dead_letter_reason(event.reason, event.last_status, event.last_error)
            self.dead_letters.labels(event.target, reason.value).inc()
        elif isinstance(event, EventAccepted):
            self.events_accepted.labels(str(event.priority)).inc()
            for target in event.targets:
                self.deliveries_enqueued.labels(target).inc()
        elif isinstance(event, CircuitStateChanged):
            if event.state in CIRCUIT_STATES:
                self.circuit.labels(event.target).state(event.state)
                self.next_probe.labels(event.target).set(event.until if event.until is not None else 0)
        elif isinstance(event, IngestRejected):
            self.ingest_rejections.labels(event.reason).inc()

    def set_queue_depth(self, depths: Mapping[str, int]) -> None:
        """Refresh the queue gauge from the queue's stats; a state that emptied out reads 0, not stale."""
        for state in self._depth_states - set(depths):
            self.queue_depth.labels(state).set(0)
        for state, count in depths.items():
            self.queue_depth.labels(state).set(count)
        self._depth_states |= set(depths)

    def set_queue_stats(
        self,
        depths: Mapping[str, int],
        *,
        pending_by_target: Mapping[str, int],
        oldest_pending_at: float | None,
        now: float,
    ) -> None:
        """Refresh every queue gauge from one reading of the queue's stats."""
        self.set_queue_depth(depths)
        for name in self._pending_targets - set(pending_by_target):
            if name in self._targets:
                self.queue_pending.labels(name).set(0)
            else:  # an unconfigured target's deliveries left the queue: its series goes with them
                with contextlib.suppress(KeyError):
                    self.queue_pending.remove(name)
        for name, count in pending_by_target.items():
            self.queue_pending.labels(name).set(count)
        self._pending_targets = set(pending_by_target)
        self.oldest_pending_age.set(0.0 if oldest_pending_at is None else max(0.0, now - oldest_pending_at))

    def set_target_holds(self, holds: Mapping[str, str]) -> None:
        """Refresh the paused and disabled gauges of the configured targets from the queue's holds."""
        for name in self._targets:
            hold = holds.get(name)
            self.paused.labels(name).set(1 if hold == "paused" else 0)
            self.disabled.labels(name).set(1 if hold is not None and hold != "paused" else 0)

    def watch_audit(self, audit: AuditHealthSource) -> None:
        """Export ``audit``'s failed writes and lost records (read at each scrape)."""
        self.registry.register(_AuditCollector(audit))

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (serve it with ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
