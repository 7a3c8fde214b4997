"""The one scheduler every backend uses, on its own: fairness, caps, limits and send slots (pure)."""

from __future__ import annotations

import pytest

from cxone_eventbridge.router.queue import TargetLimits
from cxone_eventbridge.router.queue.scheduler import (
    RATE_HORIZON_S,
    Candidate,
    FairScheduler,
    limited_caps,
    rate_slots,
    rate_slots_available,
)


def candidates(priority: int, target: str, count: int, start: int = 0) -> list[Candidate[int]]:
    return [Candidate(0.0, start + i, target, priority, start + i) for i in range(count)]


def test_equal_weights_alternate_between_priorities() -> None:
    """With equal weights, two backlogged priorities share slots evenly, the lower number first on ties."""
    scheduler = FairScheduler([1.0] * 10)
    chosen = scheduler.choose(candidates(2, "a", 5) + candidates(7, "a", 5, start=100), {"a": 10}, 6)
    assert [c.priority for c in chosen] == [2, 7, 2, 7, 2, 7]


def test_caps_skip_a_full_target_without_blocking_the_rest() -> None:
    """A target without room is passed over, and the others' candidates are still chosen in order."""
    chosen = FairScheduler().choose(candidates(5, "a", 5) + candidates(5, "b", 2, start=10), {"a": 1, "b": 5}, 10)
    assert [(c.target, c.key) for c in chosen] == [("a", 0), ("b", 10), ("b", 11)]


def test_an_idle_priority_banks_no_credit() -> None:
    """A priority that had nothing to send does not get a burst when it comes back."""
    scheduler = FairScheduler()
    for _ in range(20):
        scheduler.choose(candidates(0, "a", 50), {"a": 1000}, 50)
    chosen = scheduler.choose(candidates(0, "a", 600) + candidates(9, "a", 10, start=1000), {"a": 1000}, 600)
    assert sum(c.priority == 9 for c in chosen) <= 2


def test_weights_must_be_ten_positive_numbers() -> None:
    """One weight per priority 0-9, all positive."""
    with pytest.raises(ValueError, match="10 positive"):
        FairScheduler([1.0] * 9)


def test_limited_caps_apply_in_flight_and_rate_limits() -> None:
    """A target's cap is what it wants, minus leases held anywhere, within its send slots; 0 drops it."""
    limits = {"a": TargetLimits(max_in_flight=4), "b": TargetLimits(rate_per_s=2), "c": TargetLimits(max_in_flight=1)}
    caps = limited_caps(
        {"a": 10, "b": 10, "c": 5, "d": 7}, limits, leased={"a": 1, "c": 1}, next_slot_at={"b": None}, now=100.0
    )
    assert caps == {"a": 3, "b": 2, "d": 7}


def test_rate_slots_are_spaced_and_continue_from_the_last_one() -> None:
    """Send slots start now (or at the stored next slot) and are 1/rate apart, with the margin."""
    times, following = rate_slots(None, 10, 100.0, 3)
    assert times == pytest.approx([100.0, 100.102, 100.204])
    assert following == pytest.approx(100.306)
    assert rate_slots_available(following, 10, 100.0) == 7
    assert rate_slots_available(100.0 + RATE_HORIZON_S + 0.1, 10, 100.0) == 0
