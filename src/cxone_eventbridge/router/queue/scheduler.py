"""The one scheduler every backend uses: which ready deliveries a lease hands out. Pure, no I/O.

A backend finds *ready candidates* (pending, due, of a target that wants work) and hands them here;
the scheduler chooses. So priority fairness and per-target caps behave the same on SQLite, on
PostgreSQL and on any later backend, and are tested once.

Fairness across priorities is *weighted fair queuing* (stride scheduling): priority ``p`` (0-9, lower
first) gets weight ``2 ** (9 - p)``. When several priorities have ready work, each lease hands out slots
in proportion to those weights, taking the lower number first on ties, so priority 0 gets 512 slots for
every one of priority 9, but priority 9 is never starved: a ready priority-9 delivery is served within
about 1,023 deliveries (512 + 256 + ... + 1) however much higher-priority work keeps arriving. Within
one priority, deliveries go FIFO by (``next_attempt_at``, insertion order). Each target's cap is applied
while choosing, so a busy target never blocks another target's work (no head-of-line blocking).

Per-target limits held across routers (:class:`~.records.TargetLimits`) become caps here too:
``max_in_flight`` minus what is leased anywhere, and ``rate_per_s`` as evenly spaced send slots
(:func:`rate_slots`), which the backend stores so that every router draws from the same sequence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Generic, NamedTuple, TypeVar

from cxone_eventbridge.router.queue.records import MAX_PRIORITY, Delivery, TargetLimits

K = TypeVar("K")

# Rate-limited sends are spaced 2% wider than 1/rate, so that a few milliseconds of send jitter never
# puts rate + 1 requests into one second at the receiver.
RATE_SPACING_MARGIN = 1.02
# How far ahead send slots of a rate-limited target are handed out with a lease.
RATE_HORIZON_S = 1.0


class Candidate(NamedTuple, Generic[K]):
    """A ready delivery as a backend found it; ``key`` is whatever the backend claims it by."""

    next_attempt_at: float
    order: int  # insertion order, breaking ties of next_attempt_at
    target: str
    priority: int
    key: K


def default_weights() -> tuple[float, ...]:
    return tuple(float(2 ** (MAX_PRIORITY - p)) for p in range(MAX_PRIORITY + 1))


class FairScheduler:
    """Stride scheduling across priorities; one per process (its credit is not shared, nor need it be)."""

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        chosen = tuple(weights) if weights is not None else default_weights()
        if len(chosen) != MAX_PRIORITY + 1 or any(w <= 0 for w in chosen):
            raise ValueError("priority weights must be 10 positive numbers, one per priority 0-9")
        self._strides = tuple(1.0 / w for w in chosen)
        self._passes = [0.0] * (MAX_PRIORITY + 1)
        self._virtual_time = 0.0
        self._backlogged: set[int] = set()

    def choose(self, candidates: Iterable[Candidate[K]], caps: Mapping[str, int], limit: int) -> list[Candidate[K]]:
        """Up to ``limit`` candidates, by weighted fairness across priorities, each target within its cap."""
        levels: dict[int, list[Candidate[K]]] = {}
        for candidate in candidates:
            levels.setdefault(candidate.priority, []).append(candidate)
        for level in levels.values():
            level.sort()
        passes, strides = self._passes, self._strides
        for priority in levels:
            if priority not in self._backlogged:
                # A priority that was idle does not bank credit for the time it had nothing to send.
                passes[priority] = max(passes[priority], self._virtual_time)
        self._backlogged = set(levels)
        remaining = dict(caps)
        positions = dict.fromkeys(levels, 0)
        chosen: list[Candidate[K]] = []
        active = set(levels)
        while active and len(chosen) < limit:
            # Serve the smallest virtual finish time (start + stride), as weighted fair queuing does.
            priority = min(active, key=lambda p: (passes[p] + strides[p], p))
            level = levels[priority]
            index = positions[priority]
            while index < len(level) and remaining.get(level[index].target, 0) <= 0:
                index += 1
            if index == len(level):
                active.discard(priority)
                continue
            candidate = level[index]
            positions[priority] = index + 1
            remaining[candidate.target] -= 1
            chosen.append(candidate)
            self._virtual_time = passes[priority]
            passes[priority] += strides[priority]
        return chosen


def mark_probes(deliveries: list[Delivery], circuit_open_until: Mapping[str, float], now: float) -> list[Delivery]:
    """Deliveries of targets whose shared circuit is half-open, marked as its probe."""
    half_open = {t for t, until in circuit_open_until.items() if until <= now}
    if not half_open:
        return deliveries
    return [replace(d, probe=True) if d.target in half_open else d for d in deliveries]


def rate_spacing(rate_per_s: float) -> float:
    return RATE_SPACING_MARGIN / rate_per_s


def rate_slots_available(next_slot_at: float | None, rate_per_s: float, now: float) -> int:
    """How many send slots of a rate-limited target fall within the horizon from ``now``."""
    first = now if next_slot_at is None else max(next_slot_at, now)
    room = now + RATE_HORIZON_S - first
    if room < 0:
        return 0
    return math.floor(room / rate_spacing(rate_per_s)) + 1


def rate_slots(next_slot_at: float | None, rate_per_s: float, now: float, count: int) -> tuple[list[float], float]:
    """``count`` send times for a rate-limited target, and where its next slot starts afterwards."""
    first = now if next_slot_at is None else max(next_slot_at, now)
    spacing = rate_spacing(rate_per_s)
    return [first + i * spacing for i in range(count)], first + count * spacing


def limited_caps(
    wants: Mapping[str, int],
    limits: Mapping[str, TargetLimits],
    *,
    leased: Mapping[str, int],
    next_slot_at: Mapping[str, float | None],
    now: float,
    circuit_open_until: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Each target's cap for one lease: what it wants, within its in-flight and rate limits (if any) and
    its shared circuit (none while open; one in flight, counted in ``leased``, while half-open)."""
    caps: dict[str, int] = {}
    circuits = circuit_open_until or {}
    for target, wanted in wants.items():
        cap = wanted
        open_until = circuits.get(target)
        if open_until is not None:
            cap = 0 if open_until > now else min(cap, 1 - leased.get(target, 0))
        limit = limits.get(target)
        if limit is not None:
            if limit.max_in_flight is not None:
                cap = min(cap, limit.max_in_flight - leased.get(target, 0))
            if limit.rate_per_s is not None:
                cap = min(cap, rate_slots_available(next_slot_at.get(target), limit.rate_per_s, now))
        if cap > 0:
            caps[target] = cap
    return caps
