"""Clocks a test moves, for code that takes ``clock=`` (the router, its queue, circuits, receivers, the timeline).

``ManualClock`` stands still until the test moves it: what depends on time happens only when the test
says so, however slow the machine. ``ShiftedClock`` runs with the real time plus an offset the test moves,
for tests where real timers must still fire (per-attempt timeouts) while expiry is jumped over.
"""

from __future__ import annotations

import time

T0 = 1_700_000_000.0  # a fixed "now" in Unix seconds (November 2023)


class ManualClock:
    """A clock at ``now`` that moves only by ``advance`` (or by setting ``now``)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ShiftedClock:
    """The real time plus an offset the test moves (router, sandbox and receivers may share it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset
