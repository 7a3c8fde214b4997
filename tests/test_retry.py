"""Pure retry decisions: classification, Retry-After parsing and backoff schedules, as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cxone_eventbridge.models import BackoffStrategy
from cxone_eventbridge.retry import (
    Outcome,
    RequestRetries,
    backoff_delay,
    classify_status,
    next_delay,
    parse_retry_after,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (299, Outcome.SUCCESS),
        (301, Outcome.PERMANENT),
        (400, Outcome.PERMANENT),
        (401, Outcome.PERMANENT),
        (404, Outcome.PERMANENT),
        (408, Outcome.RETRY),
        (410, Outcome.GONE),
        (425, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    """Each status maps to the outcome the delivery contract names."""
    assert classify_status(status) is outcome


def test_classify_status_configurable_4xx() -> None:
    """An operator can make a client error retryable."""
    assert classify_status(404, retryable_4xx=frozenset({404})) is Outcome.RETRY


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Sun, 29 Nov 2026 12:00:30 GMT", 30.0),
        ("Sunday, 29-Nov-26 12:01:00 GMT", 60.0),
        ("Sun Nov 29 12:00:10 2026", 10.0),
        ("Sat, 28 Nov 2026 12:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    """Retry-After parses as delta-seconds or an HTTP date (past dates mean now); junk gives None."""
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("strategy", "attempt", "nominal"),
    [
        (BackoffStrategy.EXPONENTIAL, 0, 1.0),
        (BackoffStrategy.EXPONENTIAL, 3, 8.0),
        (BackoffStrategy.EXPONENTIAL, 40, 300.0),
        (BackoffStrategy.LINEAR, 0, 1.0),
        (BackoffStrategy.LINEAR, 4, 5.0),
        (BackoffStrategy.FIXED, 9, 1.0),
    ],
)
def test_backoff_bounds(strategy: BackoffStrategy, attempt: int, nominal: float) -> None:
    """Equal jitter keeps every delay between half the nominal delay and the nominal delay (capped)."""
    assert backoff_delay(strategy, attempt, rng=lambda: 0.0) == nominal / 2
    assert backoff_delay(strategy, attempt, rng=lambda: 0.999999) == pytest.approx(nominal, rel=1e-5)


def test_backoff_rejects_negative_attempt() -> None:
    """A negative attempt number is a programming error."""
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(BackoffStrategy.FIXED, -1)


def test_next_delay_prefers_retry_after_within_bounds() -> None:
    """The server's Retry-After wins over backoff, capped at the maximum."""
    assert next_delay(BackoffStrategy.EXPONENTIAL, 0, retry_after_s=12.0) == 12.0
    assert next_delay(BackoffStrategy.EXPONENTIAL, 0, retry_after_s=10_000.0, max_retry_after_s=60.0) == 60.0
    assert next_delay(BackoffStrategy.FIXED, 0, retry_after_s=None, base_s=2.0, rng=lambda: 0.0) == 1.0


def test_request_retries_count_attempts_and_back_off_exponentially() -> None:
    """Waits double from base_s up to cap_s (no jitter here); after max_attempts in all, None: give up."""
    retries = RequestRetries(max_attempts=5, base_s=1.0, cap_s=3.0, rng=lambda: 0.999999)
    waits = [retries.next_wait() for _ in range(5)]
    assert waits[:4] == pytest.approx([1.0, 2.0, 3.0, 3.0], rel=1e-5)
    assert waits[4] is None
    assert retries.attempt == 5
    assert retries.waited_s == pytest.approx(9.0, rel=1e-5)


@pytest.mark.parametrize(
    ("retry_after", "max_retry_after", "max_total_wait", "wait"),
    [
        (7.0, float("inf"), float("inf"), 7.0),  # taken as given
        (7.0, 2.0, float("inf"), 2.0),  # shortened to the bound
        (7.0, float("inf"), 5.0, None),  # beyond the whole budget: give up now, not sleep
        (None, float("inf"), 0.1, None),  # even the backoff does not fit
    ],
)
def test_request_retries_follow_retry_after_within_their_bounds(
    retry_after: float | None, max_retry_after: float, max_total_wait: float, wait: float | None
) -> None:
    """Retry-After wins over backoff, bounded by max_retry_after_s; no wait passes max_total_wait_s."""
    retries = RequestRetries(
        max_attempts=3, base_s=0.5, cap_s=8.0, max_retry_after_s=max_retry_after, max_total_wait_s=max_total_wait
    )
    assert retries.next_wait(retry_after) == wait
    assert retries.attempt == (1 if wait is None else 2)
