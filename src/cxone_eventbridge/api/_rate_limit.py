"""Client-side pacing: a token bucket at the configured requests per minute.

Bulk work (an ``apply`` of 500 targets) paces itself instead of provoking a storm of 429s. Each caller
reserves its slot synchronously before it awaits, so concurrent callers never race for the same token and
no lock is needed (this is the GCRA form of the token bucket: one "theoretical arrival time").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Allows ``burst`` requests at once, then one every ``60 / per_minute`` seconds."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self._interval = 60.0 / per_minute
        # A tenth of a minute's allowance lets a short burst through without waiting (10 at 100/min).
        self._burst = max(1.0, per_minute / 10) if burst is None else max(1.0, burst)
        # How far ahead of real time the schedule may run: the burst, expressed as time.
        self._tolerance = self._interval * (self._burst - 1)
        self._clock = clock
        self._sleep = sleep
        self._next_free: float | None = None

    @property
    def interval_s(self) -> float:
        return self._interval

    @property
    def burst(self) -> float:
        return self._burst

    def reserve(self) -> float:
        """Take the next slot and return how long the caller must wait for it (0.0 when free now)."""
        now = self._clock()
        arrival = now if self._next_free is None else max(self._next_free, now)
        wait = max(0.0, arrival - self._tolerance - now)
        self._next_free = arrival + self._interval
        return wait

    async def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited (for logs and tests)."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait
