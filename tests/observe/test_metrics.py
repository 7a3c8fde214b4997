"""Prometheus metrics and the status view, fed with observe.events records and read back as Prometheus text."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cxone_eventbridge.observe.events import (
    CircuitStateChanged,
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    EventAccepted,
    IngestRejected,
    ObservedEvent,
    TargetChanged,
)
from cxone_eventbridge.observe.metrics import REASONS, RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker, percentile
from cxone_eventbridge.wire import iso_time

T0 = 1_700_000_000.0

TRAFFIC: list[ObservedEvent] = [
    EventAccepted("e1", ("crm", "bi"), 5, T0),
    EventAccepted("e2", ("crm",), 1, T0),
    DeliveryAttempted("e1", "d1", "crm", 1, "retry", 503, 0.020, None, T0),
    DeliveryRetryScheduled("e1", "d1", "crm", 1, 0.5, "status 503", T0, status_code=503),
    DeliveryAttempted("e1", "d1", "crm", 2, "success", 200, 0.010, None, T0),
    DeliverySucceeded("e1", "d1", "crm", 2, 0.7, T0),
    DeliveryAttempted("e2", "d3", "crm", 1, "success", 200, 0.030, None, T0),
    DeliverySucceeded("e2", "d3", "crm", 1, 0.04, T0),
    DeliveryAttempted("e1", "d2", "bi", 1, "permanent", 400, 0.005, None, T0),
    DeliveryDeadLettered("e1", "d2", "bi", 1, "permanent", 400, T0),
    CircuitStateChanged("bi", "open", T0),
    IngestRejected("too_large", T0),
    IngestRejected("malformed_json", T0),
    IngestRejected("malformed_json", T0),
    TargetChanged("create", "crm", "1", T0),
]


def samples(metrics: RouterMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels (parsed by prometheus_client)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_count_deliveries_retries_latency_dead_letters_circuit_and_rejections() -> None:
    """Each record moves the series it concerns, with label target = the target's name."""
    metrics = RouterMetrics()
    for event in TRAFFIC:
        metrics.observe(event)
    s = samples(metrics)
    assert s["cxeb_events_accepted_total", (("priority", "5"),)] == 1
    assert s["cxeb_events_accepted_total", (("priority", "1"),)] == 1
    assert s["cxeb_deliveries_enqueued_total", (("target", "crm"),)] == 2
    assert s["cxeb_deliveries_total", (("outcome", "delivered"), ("target", "crm"))] == 2
    assert s["cxeb_deliveries_total", (("outcome", "dead_lettered"), ("target", "bi"))] == 1
    assert s["cxeb_delivery_attempts_total", (("outcome", "retry"), ("target", "crm"))] == 1
    assert s["cxeb_delivery_attempts_total", (("outcome", "success"), ("target", "crm"))] == 2
    assert s["cxeb_delivery_retries_total", (("reason", "status_5xx"), ("target", "crm"))] == 1
    assert s["cxeb_delivery_attempt_duration_seconds_count", (("target", "crm"),)] == 3
    assert s["cxeb_delivery_attempt_duration_seconds_sum", (("target", "crm"),)] == pytest.approx(0.06)
    assert s["cxeb_delivery_attempt_duration_seconds_bucket", (("le", "0.025"), ("target", "crm"))] == 2
    assert s["cxeb_delivery_end_to_end_seconds_count", (("target", "crm"),)] == 2
    assert s["cxeb_dead_letters_total", (("reason", "status_4xx"), ("target", "bi"))] == 1
    assert s["cxeb_circuit_state", (("cxeb_circuit_state", "open"), ("target", "bi"))] == 1
    assert s["cxeb_circuit_state", (("cxeb_circuit_state", "closed"), ("target", "bi"))] == 0
    assert s["cxeb_ingest_rejections_total", (("reason", "malformed_json"),)] == 2
    assert s["cxeb_ingest_rejections_total", (("reason", "too_large"),)] == 1


def test_queue_depth_gauge_is_refreshed_and_emptied_states_read_zero() -> None:
    """set_queue_depth replaces the gauge's values; a state missing from the new stats drops to 0."""
    metrics = RouterMetrics()
    metrics.set_queue_depth({"ready": 7, "leased": 2, "dead": 1})
    metrics.set_queue_depth({"ready": 3, "dead": 1})
    s = samples(metrics)
    assert s["cxeb_queue_depth", (("state", "ready"),)] == 3
    assert s["cxeb_queue_depth", (("state", "leased"),)] == 0
    assert s["cxeb_queue_depth", (("state", "dead"),)] == 1


def test_each_metrics_instance_has_its_own_registry() -> None:
    """Two RouterMetrics in one process neither collide nor share counts."""
    first, second = RouterMetrics(), RouterMetrics()
    first.observe(IngestRejected("unauthorized", T0))
    assert ("cxeb_ingest_rejections_total", (("reason", "unauthorized"),)) in samples(first)
    assert ("cxeb_ingest_rejections_total", (("reason", "unauthorized"),)) not in samples(second)


def test_status_tracker_reports_per_target_counts_percentiles_and_circuit() -> None:
    """The status view folds the same records into delivered/failed/retries/p50/p99/circuit per target."""
    tracker = StatusTracker()
    for event in TRAFFIC:
        tracker.observe(event)
    tracker.ensure(["idle"])
    rows = {row["target"]: row for row in tracker.snapshot()}
    assert list(rows) == ["bi", "crm", "idle"]
    crm, bi, idle = rows["crm"], rows["bi"], rows["idle"]
    assert (crm["queued"], crm["delivered"], crm["failed"], crm["retries"], crm["attempts"]) == (2, 2, 0, 1, 3)
    assert crm["p50Ms"] == 20.0
    assert crm["p99Ms"] == 30.0
    assert (bi["failed"], bi["circuit"], bi["lastStatus"]) == (1, "open", 400)
    assert (idle["delivered"], idle["p50Ms"], idle["circuit"]) == (0, None, "closed")
    assert tracker.events_accepted == 2


def test_status_latency_window_is_bounded() -> None:
    """Only the last ``window`` attempt latencies count towards the percentiles."""
    tracker = StatusTracker(window=3)
    for latency in (9.0, 9.0, 0.001, 0.002, 0.003):
        tracker.observe(DeliveryAttempted("e", "d", "t", 1, "success", 200, latency, None, T0))
    (row,) = tracker.snapshot()
    assert row["p99Ms"] == 3.0
    assert row["attempts"] == 5


@pytest.mark.parametrize(
    ("data", "q", "expected"),
    [([], 50, None), ([5.0], 99, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([float(n) for n in range(1, 101)], 99, 99.0)],
)
def test_percentile_is_nearest_rank(data: list[float], q: float, expected: float | None) -> None:
    """percentile() uses the nearest-rank definition."""
    assert percentile(data, q) == expected


def test_every_configured_target_has_all_its_series_at_zero_from_the_start() -> None:
    """ensure_targets creates each target's counters, histograms and circuit state before any traffic."""
    metrics = RouterMetrics()
    metrics.ensure_targets(["crm", "idle"])
    s = samples(metrics)
    for target in ("crm", "idle"):
        assert s["cxeb_deliveries_total", (("outcome", "delivered"), ("target", target))] == 0
        assert s["cxeb_deliveries_total", (("outcome", "dead_lettered"), ("target", target))] == 0
        assert s["cxeb_delivery_attempts_total", (("outcome", "success"), ("target", target))] == 0
        assert s["cxeb_delivery_retries_total", (("reason", "timeout"), ("target", target))] == 0
        assert s["cxeb_dead_letters_total", (("reason", "status_5xx"), ("target", target))] == 0
        assert s["cxeb_delivery_attempt_duration_seconds_count", (("target", target),)] == 0
        assert s["cxeb_circuit_state", (("cxeb_circuit_state", "closed"), ("target", target))] == 1
        assert s["cxeb_circuit_next_probe_timestamp_seconds", (("target", target),)] == 0
        assert s["cxeb_queue_pending", (("target", target),)] == 0
    assert s["cxeb_events_accepted_total", (("priority", "9"),)] == 0


def test_a_removed_target_loses_its_series_and_labels_stay_a_fixed_set() -> None:
    """Targets no longer configured drop out; every reason label is one of the documented values."""
    metrics = RouterMetrics()
    metrics.ensure_targets(["crm", "old"])
    metrics.observe(DeliveryRetryScheduled("e", "d", "crm", 1, 1.0, "whatever text", T0, error="timeout after 5 ms"))
    metrics.ensure_targets(["crm"])
    s = samples(metrics)
    assert not [key for key in s if ("target", "old") in key[1]]
    assert s["cxeb_delivery_retries_total", (("reason", "timeout"), ("target", "crm"))] == 1
    reasons = {dict(labels)["reason"] for name, labels in s if name == "cxeb_delivery_retries_total"}
    assert reasons == set(REASONS)


def test_queue_stats_set_depths_pending_by_target_and_oldest_age() -> None:
    """One reading of the queue's stats refreshes every queue gauge; emptied targets read 0 or go."""
    metrics = RouterMetrics()
    metrics.ensure_targets(["crm"])
    depths = {"pending": 3, "leased": 1, "delivered": 10, "dead": 2}
    metrics.set_queue_stats(depths, pending_by_target={"crm": 2, "gone": 1}, oldest_pending_at=T0 - 42, now=T0)
    s = samples(metrics)
    assert s["cxeb_queue_pending", (("target", "gone"),)] == 1
    assert s["cxeb_queue_oldest_pending_age_seconds", ()] == 42
    metrics.set_queue_stats(depths, pending_by_target={}, oldest_pending_at=None, now=T0)
    s = samples(metrics)
    assert s["cxeb_queue_pending", (("target", "crm"),)] == 0
    assert ("cxeb_queue_pending", (("target", "gone"),)) not in s
    assert s["cxeb_queue_oldest_pending_age_seconds", ()] == 0
    assert s["cxeb_queue_depth", (("state", "dead"),)] == 2


def test_an_open_circuit_exports_its_next_probe_time() -> None:
    """cxeb_circuit_next_probe_timestamp_seconds is the open circuit's probe time, 0 once it closes."""
    metrics = RouterMetrics()
    metrics.observe(CircuitStateChanged("crm", "open", T0, until=T0 + 5))
    assert samples(metrics)["cxeb_circuit_next_probe_timestamp_seconds", (("target", "crm"),)] == T0 + 5
    metrics.observe(CircuitStateChanged("crm", "closed", T0 + 6))
    assert samples(metrics)["cxeb_circuit_next_probe_timestamp_seconds", (("target", "crm"),)] == 0


def test_status_says_why_a_circuit_opened_and_when_it_probes() -> None:
    """Consecutive failures and the last one explain an open circuit; a failed probe says so; closing clears it."""
    tracker = StatusTracker()
    for n in range(3):
        tracker.observe(DeliveryAttempted("e", f"d{n}", "crm", 1, "retry", 503, 0.01, None, T0))
    tracker.observe(CircuitStateChanged("crm", "open", T0, until=T0 + 5))
    (row,) = tracker.snapshot()
    assert row["circuit"] == "open"
    assert row["circuitUntil"] == iso_time(T0 + 5) == "2023-11-14T22:13:25.000Z"
    assert row["circuitReason"] == "3 failed attempts in a row, the last: status 503"
    tracker.observe(CircuitStateChanged("crm", "half_open", T0 + 5))
    tracker.observe(DeliveryAttempted("e", "d9", "crm", 2, "error", None, 1.0, "timeout after 1000 ms", T0 + 6))
    tracker.observe(CircuitStateChanged("crm", "open", T0 + 6, until=T0 + 16))
    (row,) = tracker.snapshot()
    assert row["circuitReason"] == "the probe failed: timeout after 1000 ms"
    tracker.observe(DeliveryAttempted("e", "d9", "crm", 3, "success", 200, 0.01, None, T0 + 17))
    tracker.observe(CircuitStateChanged("crm", "closed", T0 + 17))
    (row,) = tracker.snapshot()
    assert (row["circuit"], row["circuitUntil"], row["circuitReason"]) == ("closed", None, None)


def test_status_counts_deliveries_being_retried() -> None:
    """retrying goes up at a delivery's first failure and down when it is delivered or dead-lettered."""
    tracker = StatusTracker()
    tracker.observe(DeliveryRetryScheduled("e", "d1", "crm", 1, 1.0, "status 503", T0))
    tracker.observe(DeliveryRetryScheduled("e", "d2", "crm", 1, 1.0, "status 503", T0))
    tracker.observe(DeliveryRetryScheduled("e", "d1", "crm", 2, 1.0, "status 503", T0))
    assert tracker.snapshot()[0]["retrying"] == 2
    tracker.observe(DeliverySucceeded("e", "d1", "crm", 3, 1.0, T0))
    tracker.observe(DeliveryDeadLettered("e", "d2", "crm", 2, "retries_exhausted", 503, T0))
    tracker.observe(DeliverySucceeded("e", "d3", "crm", 1, 1.0, T0))
    (row,) = tracker.snapshot()
    assert (row["retrying"], row["delivered"], row["failed"]) == (0, 2, 1)
