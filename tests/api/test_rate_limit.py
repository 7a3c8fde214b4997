"""The client-side token bucket, on an injected clock."""

from __future__ import annotations

import pytest

from cxone_eventbridge.api import RateLimiter

from .conftest import RecordingSleep


def test_burst_then_paced() -> None:
    """At 60/min with a burst of 3, three calls go at once, then each waits one more second than the last."""
    limiter = RateLimiter(60, burst=3, clock=lambda: 100.0)
    assert [limiter.reserve() for _ in range(6)] == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


def test_tokens_refill_with_time() -> None:
    """After the bucket drains, waiting the interval frees exactly one more request."""
    now = [0.0]
    limiter = RateLimiter(120, burst=1, clock=lambda: now[0])
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)
    now[0] = 10.0  # long idle: the bucket refills only up to its burst, not beyond
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)


def test_default_burst_is_a_tenth_of_a_minute() -> None:
    """At the default 100/min, 10 requests pass at once and the 11th waits 0.6 s."""
    limiter = RateLimiter(100, clock=lambda: 0.0)
    waits = [limiter.reserve() for _ in range(11)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.6)


async def test_acquire_sleeps_the_reserved_wait() -> None:
    """``acquire`` awaits the injected sleep for the reserved wait only when there is one."""
    sleep = RecordingSleep()
    limiter = RateLimiter(60, burst=1, clock=lambda: 0.0, sleep=sleep)
    await limiter.acquire()
    await limiter.acquire()
    assert sleep.waits == [1.0]


def test_rate_must_be_positive() -> None:
    """A zero rate is refused (settings already require > 0)."""
    with pytest.raises(ValueError, match="per_minute"):
        RateLimiter(0)
