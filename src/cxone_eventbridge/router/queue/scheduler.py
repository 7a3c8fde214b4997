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
(:func:`rate_slots`), which the backend stores so that every router draws from the same sequence. The
spacing leaves room for the jitter between a slot and the request's arrival (``RATE_JITTER_S``), so the
receiver never counts more than the limit in any one-second window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Generic, NamedTuple, TypeVar

from cxone_eventbridge.router.queue.records import MAX_PRIORITY, Delivery, TargetLimits

K = TypeVar("K")

# A rate-limited target's send slots are spaced (1 + RATE_JITTER_S) / rate apart. A request reaches the
# receiver some time after its slot: the dispatcher launches it at most STALE_SLOT_S late (a later one is
# given back for a fresh slot, see slot_missed), the rest is the way there (client thread, network, the
# receiver's own loop). If every request arrives within RATE_JITTER_S of its slot, any one-second window
# at the receiver holds arrivals of slots from a span of at most 1 + RATE_JITTER_S seconds, which the
# spacing fits fewer than ``rate`` + 1 of: the limit holds in every window, not only on average.
# 0.2 s: with 0.1 s the three-router test (three routers, PostgreSQL and a receiver that timestamps on a
# loop busy with 18,000 other requests, on two cores at load 6-9) counted 50 in one second for a limit of
# 50, i.e. about 0.1 s of jitter; the margin costs the target 1/6 of its rate (41.7/s for 50).
RATE_JITTER_S = 0.2
STALE_SLOT_S = 0.010
# How far ahead send slots of a rate-limited target are handed out with a lease.
RATE_HORIZON_S = 1.0
# An idle target's first slot is this far after the lease reads the clock: the lease's remaining statements
# and its way to the dispatcher take a few milliseconds, and a slot already missed on arrival is wasted.
RATE_LEAD_S = 0.020


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
        passes = self._passes
        for priority in levels:
            if priority not in self._backlogged:
                # A priority that was idle does not bank credit for the time it had nothing to send.
                passes[priority] = max(passes[priority], self._virtual_time)
        self._backlogged = set(levels)
        remaining = dict(caps)
        if len(levels) == 1:
            return self._choose_one_level(levels, remaining, limit)
        return self._choose_weighted(levels, remaining, limit)

    def _choose_weighted(
        self, levels: dict[int, list[Candidate[K]]], remaining: dict[str, int], limit: int
    ) -> list[Candidate[K]]:
        passes, strides = self._passes, self._strides
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

    def _choose_one_level(
        self, levels: dict[int, list[Candidate[K]]], remaining: dict[str, int], limit: int
    ) -> list[Candidate[K]]:
        """``choose`` when one priority has candidates (the usual case): in order, each target within its
        cap, with the same bookkeeping as the weighted loop, without its search for the next priority."""
        [(priority, level)] = levels.items()
        chosen: list[Candidate[K]] = []
        for candidate in level:
            if len(chosen) >= limit:
                break
            if remaining.get(candidate.target, 0) > 0:
                remaining[candidate.target] -= 1
                chosen.append(candidate)
        passes, stride = self._passes, self._strides[priority]
        for _ in chosen:
            self._virtual_time = passes[priority]
            passes[priority] += stride
        return chosen


def mark_probes(deliveries: list[Delivery], circuit_open_until: Mapping[str, float], now: float) -> list[Delivery]:
    """Deliveries of targets whose shared circuit is half-open, marked as its probe."""
    half_open = {t for t, until in circuit_open_until.items() if until <= now}
    if not half_open:
        return deliveries
    return [replace(d, probe=True) if d.target in half_open else d for d in deliveries]


def rate_spacing(rate_per_s: float) -> float:
    """Seconds between two send slots of a target limited to ``rate_per_s`` (see RATE_JITTER_S)."""
    return (1.0 + RATE_JITTER_S) / rate_per_s


def _first_slot(next_slot_at: float | None, now: float) -> float:
    soonest = now + RATE_LEAD_S
    return soonest if next_slot_at is None else max(next_slot_at, soonest)


def rate_slots_available(next_slot_at: float | None, rate_per_s: float, now: float) -> int:
    """How many send slots of a rate-limited target fall within the horizon from ``now``."""
    room = now + RATE_HORIZON_S - _first_slot(next_slot_at, now)
    if room < 0:
        return 0
    return math.floor(room / rate_spacing(rate_per_s)) + 1


def rate_slots(next_slot_at: float | None, rate_per_s: float, now: float, count: int) -> tuple[list[float], float]:
    """``count`` send times for a rate-limited target, and where its next slot starts afterwards."""
    first = _first_slot(next_slot_at, now)
    spacing = rate_spacing(rate_per_s)
    return [first + i * spacing for i in range(count)], first + count * spacing


def slot_missed(not_before: float, now: float) -> bool:
    """Whether a delivery's send slot passed too long ago to send it now: sent late, it would arrive bunched
    with the slots after it (past RATE_JITTER_S) and break the target's rate. It is given back instead and
    leased again with a fresh slot. A delivery without a slot (``not_before`` 0) never misses one."""
    return not_before > 0 and now - not_before > STALE_SLOT_S


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
