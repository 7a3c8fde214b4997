"""The last few minutes, second by second: what the dashboard draws (throughput, latency, queue depth).

Prometheus keeps history for Grafana; the router's own dashboard has no query engine behind it, so this
observer keeps a ring of one-second buckets (accepted, delivered, dead-lettered, retried, attempts and
their latencies) plus the queue's depths as sampled, and hands them out as columns. Memory is bounded:
``seconds`` buckets, each with at most ``MAX_SAMPLES_PER_SECOND`` latencies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cxone_eventbridge.observe.counts import DELIVERY_RECORDS, DeliveryCounts
from cxone_eventbridge.observe.events import EventAccepted, ObservedEvent
from cxone_eventbridge.observe.status import percentile

DEFAULT_SECONDS = 300
MAX_SAMPLES_PER_SECOND = 512
QUEUE_STATES = ("pending", "leased", "dead")
# Column names of the sampled queue depths ("dead" alone is the dead-lettered count per second).
_QUEUE_COLUMNS = {"pending": "queuePending", "leased": "queueLeased", "dead": "queueDead"}


@dataclass(slots=True)
class _Second(DeliveryCounts):
    """What happened in one second (the delivery figures: ``DeliveryCounts``)."""

    second: int
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    queue: dict[str, int] | None = None

    def add_latency(self, latency_s: float) -> None:  # called before ``attempts`` counts this one
        if len(self.latencies) < MAX_SAMPLES_PER_SECOND:
            self.latencies.append(latency_s)
        else:  # keep a spread over the whole second rather than only its start
            self.latencies[self.attempts % MAX_SAMPLES_PER_SECOND] = latency_s


class Timeline:
    """Per-second counts of the last ``seconds`` seconds; subscribe ``observe`` to the router's bus."""

    def __init__(self, *, seconds: int = DEFAULT_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if seconds < 2:
            raise ValueError("seconds must be at least 2")
        self._seconds = seconds
        self._clock = clock
        self._ring: list[_Second | None] = [None] * seconds

    def _bucket(self, at: float) -> _Second | None:
        second = int(at)
        if second <= int(self._clock()) - self._seconds:
            return None  # older than the window (a late record)
        slot = second % self._seconds
        bucket = self._ring[slot]
        if bucket is None or bucket.second != second:
            bucket = self._ring[slot] = _Second(second)
        return bucket

    def observe(self, event: ObservedEvent) -> None:
        """Count one record in the second it happened."""
        if isinstance(event, EventAccepted):
            if (bucket := self._bucket(event.at)) is not None:
                bucket.accepted += 1
        elif isinstance(event, DELIVERY_RECORDS) and (bucket := self._bucket(event.at)) is not None:
            bucket.count(event)

    def record_queue(self, depths: Mapping[str, int]) -> None:
        """Remember the queue's depths as of now (the dashboard samples them when it polls)."""
        bucket = self._bucket(self._clock())
        if bucket is not None:
            bucket.queue = {state: int(depths.get(state, 0)) for state in QUEUE_STATES}

    def columns(self) -> dict[str, Any]:
        """The window up to the current second, oldest first, as columns (``t`` in Unix seconds).

        Seconds without records read 0; latency percentiles and queue depths read None where there was no
        attempt or no sample.
        """
        now = int(self._clock())
        out: dict[str, list[Any]] = {
            name: [] for name in ("t", "accepted", "delivered", "dead", "retries", "attempts", "p50Ms", "p99Ms")
        }
        out.update({column: [] for column in _QUEUE_COLUMNS.values()})
        for second in range(now - self._seconds + 1, now + 1):
            bucket = self._ring[second % self._seconds]
            if bucket is None or bucket.second != second:
                bucket = _Second(second)
            out["t"].append(second)
            out["accepted"].append(bucket.accepted)
            out["delivered"].append(bucket.delivered)
            out["dead"].append(bucket.dead_lettered)
            out["retries"].append(bucket.retries)
            out["attempts"].append(bucket.attempts)
            for name, q in (("p50Ms", 50), ("p99Ms", 99)):
                value = percentile(bucket.latencies, q)
                out[name].append(None if value is None else round(value * 1000, 3))
            for state in QUEUE_STATES:
                out[_QUEUE_COLUMNS[state]].append(None if bucket.queue is None else bucket.queue[state])
        return out
