"""The dashboard's timeline: one-second buckets of the last minutes, bounded, read out as columns."""

from __future__ import annotations

import pytest

from cxone_eventbridge.observe.events import (
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    EventAccepted,
    IngestRejected,
)
from cxone_eventbridge.observe.timeline import MAX_SAMPLES_PER_SECOND, Timeline

from ..clocks import ManualClock

T0 = 1_700_000_000.0


def test_records_are_counted_in_the_second_they_happened() -> None:
    """Accepted, attempts with latency percentiles, delivered, retried and dead-lettered land in their second."""
    clock = ManualClock(T0 + 2.5)
    timeline = Timeline(seconds=4, clock=clock)
    timeline.observe(EventAccepted("e1", ("crm",), 5, T0 + 1.2))
    timeline.observe(EventAccepted("e2", ("crm",), 5, T0 + 1.9))
    timeline.observe(DeliveryAttempted("e1", "d1", "crm", 1, "success", 200, 0.010, None, T0 + 2.1))
    timeline.observe(DeliveryAttempted("e2", "d2", "crm", 1, "retry", 503, 0.030, None, T0 + 2.2))
    timeline.observe(DeliverySucceeded("e1", "d1", "crm", 1, 1.0, T0 + 2.1))
    timeline.observe(DeliveryRetryScheduled("e2", "d2", "crm", 1, 1.0, "status 503", T0 + 2.2))
    timeline.observe(DeliveryDeadLettered("e3", "d3", "crm", 1, "permanent", 400, T0 + 2.3))
    timeline.observe(IngestRejected("malformed_json", T0 + 2.3))  # not drawn
    timeline.record_queue({"pending": 3, "leased": 1, "delivered": 9, "dead": 1})
    columns = timeline.columns()
    assert columns["t"] == [T0 - 1, T0, T0 + 1, T0 + 2]
    assert columns["accepted"] == [0, 0, 2, 0]
    assert columns["attempts"] == [0, 0, 0, 2]
    assert (columns["delivered"][3], columns["retries"][3], columns["dead"][3]) == (1, 1, 1)
    assert columns["p50Ms"] == [None, None, None, 10.0]
    assert columns["p99Ms"][3] == 30.0
    assert columns["queuePending"] == [None, None, None, 3]
    assert (columns["queueLeased"][3], columns["queueDead"][3]) == (1, 1)


def test_old_seconds_fall_out_of_the_window_and_late_records_are_dropped() -> None:
    """A bucket is reused when its second comes round again; a record older than the window is ignored."""
    clock = ManualClock(T0)
    timeline = Timeline(seconds=3, clock=clock)
    timeline.observe(EventAccepted("e1", (), 5, T0))
    clock.now = T0 + 3
    timeline.observe(EventAccepted("e2", (), 5, T0 + 3))
    timeline.observe(EventAccepted("late", (), 5, T0))
    columns = timeline.columns()
    assert columns["t"] == [T0 + 1, T0 + 2, T0 + 3]
    assert columns["accepted"] == [0, 0, 1]


def test_latency_samples_per_second_are_bounded() -> None:
    """Past MAX_SAMPLES_PER_SECOND a second keeps replacing samples instead of growing."""
    timeline = Timeline(seconds=2, clock=lambda: T0)
    for n in range(MAX_SAMPLES_PER_SECOND + 10):
        timeline.observe(DeliveryAttempted("e", f"d{n}", "crm", 1, "success", 200, 0.001, None, T0))
    assert timeline.columns()["attempts"][-1] == MAX_SAMPLES_PER_SECOND + 10
    assert len(timeline._ring[int(T0) % 2].latencies) == MAX_SAMPLES_PER_SECOND  # type: ignore[union-attr]


def test_a_window_under_two_seconds_is_refused() -> None:
    """The window must hold at least one finished second besides the current one."""
    with pytest.raises(ValueError, match="seconds"):
        Timeline(seconds=1)
