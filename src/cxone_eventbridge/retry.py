"""Pure retry decisions: status classification, ``Retry-After`` parsing, backoff schedules, one request's retries.

Shared by the control-plane client, the router API client and the delivery dispatcher; nothing here sleeps
or reads a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from cxone_eventbridge.models import BackoffStrategy


class Outcome(StrEnum):
    """What a response status means for the request that got it."""

    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"
    GONE = "gone"  # 410: the endpoint says it is gone for good; the target is disabled


RETRYABLE_STATUSES = frozenset({408, 425, 429})


def classify_status(status: int, *, retryable_4xx: frozenset[int] = frozenset()) -> Outcome:
    """2xx success; 408/425/429/5xx retried; 410 gone; any other status permanent.

    ``retryable_4xx`` lets an operator treat more client errors as transient (e.g. 404 during a deploy).
    """
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 410:
        return Outcome.GONE
    if status in RETRYABLE_STATUSES or status in retryable_4xx or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date; None when absent or unreadable.

    A date in the past means "now" (0.0). The tutorial crashed here on ``int("Wed, 21 Oct ...")``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # noqa: PLR0124 -- NaN check
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(
    strategy: BackoffStrategy,
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 300.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry), with equal jitter.

    Equal jitter keeps at least half the nominal delay, so retries spread out without ever collapsing to
    an immediate hammer.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    match strategy:
        case BackoffStrategy.EXPONENTIAL:
            nominal = base_s * (2.0 ** min(attempt, 32))
        case BackoffStrategy.LINEAR:
            nominal = base_s * (attempt + 1)
        case BackoffStrategy.FIXED:
            nominal = base_s
    nominal = min(nominal, cap_s)
    return nominal / 2 + rng() * nominal / 2


def next_delay(
    strategy: BackoffStrategy,
    attempt: int,
    *,
    retry_after_s: float | None,
    base_s: float = 1.0,
    cap_s: float = 300.0,
    max_retry_after_s: float = 3600.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """The delay before the next attempt: the server's ``Retry-After`` when given (bounded), else backoff."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), max_retry_after_s)
    return backoff_delay(strategy, attempt, base_s=base_s, cap_s=cap_s, rng=rng)


@dataclass
class RequestRetries:
    """One request's retries: attempts in all, exponential backoff between them, and a total wait allowed.

    The two API clients (``api._http.RequestSender`` for the control plane, ``router.api_client`` for a
    router) keep their own loops, because what they retry and what they say while waiting differ; after a
    retryable failure both ask ``next_wait`` how long to wait before the next attempt, or whether to give up.
    """

    max_attempts: int
    base_s: float
    cap_s: float
    max_retry_after_s: float = math.inf  # a longer Retry-After is shortened to this
    max_total_wait_s: float = math.inf  # a wait that would pass it gives up instead
    rng: Callable[[], float] = random.random
    attempt: int = 1  # the attempt being made, from 1
    waited_s: float = 0.0

    def next_wait(self, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, counted as made; None: give up (attempts or wait spent)."""
        if self.attempt >= self.max_attempts:
            return None
        delay = next_delay(
            BackoffStrategy.EXPONENTIAL,
            self.attempt - 1,
            retry_after_s=retry_after_s,
            base_s=self.base_s,
            cap_s=self.cap_s,
            max_retry_after_s=self.max_retry_after_s,
            rng=self.rng,
        )
        if self.waited_s + delay > self.max_total_wait_s:
            return None
        self.waited_s += delay
        self.attempt += 1
        return delay
