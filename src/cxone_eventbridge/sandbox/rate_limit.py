"""Per-client token buckets: the sandbox's rate limit, answered with 429 and a usable ``Retry-After``."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate_per_minute`` requests per key, with bursts of up to ``capacity``; the clock is injected."""

    def __init__(self, rate_per_minute: float, capacity: int, clock: Callable[[], float]) -> None:
        self._rate_per_s = rate_per_minute / 60.0
        self._capacity = float(capacity)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float | None:
        """Take one token: None when allowed, else the seconds until a token is available."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self._capacity, now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._capacity, bucket.tokens + elapsed * self._rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self._rate_per_s


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, rounded up, at least 1: waiting that long is enough for one more request."""
    return str(max(1, math.ceil(wait_s)))
