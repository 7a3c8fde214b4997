"""The one scheduler every backend uses, on its own: fairness, caps, limits and send slots (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxone_eventbridge.router.queue import TargetLimits
from cxone_eventbridge.router.queue.scheduler import (
    RATE_HORIZON_S,
    RATE_JITTER_S,
    RATE_LEAD_S,
    STALE_SLOT_S,
    Candidate,
    FairScheduler,
    limited_caps,
    rate_slots,
    rate_slots_available,
    slot_missed,
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
    """Send slots start just after now (or at the stored next slot) and are (1 + jitter margin)/rate apart."""
    spacing = (1 + RATE_JITTER_S) / 10
    times, following = rate_slots(None, 10, 100.0, 3)
    start = 100.0 + RATE_LEAD_S
    assert times == pytest.approx([start, start + spacing, start + 2 * spacing])
    assert following == pytest.approx(start + 3 * spacing)
    assert rate_slots_available(following, 10, 100.0) == int((101.0 - following) / spacing) + 1
    assert rate_slots_available(100.0 + RATE_HORIZON_S + 0.1, 10, 100.0) == 0
    times, _ = rate_slots(105.0, 10, 100.0, 2)
    assert times == pytest.approx([105.0, 105.0 + spacing])


@pytest.mark.parametrize("rate", [1, 2, 5, 10, 49, 50, 51, 100, 333, 1000])
def test_arrivals_within_the_jitter_never_exceed_the_rate_in_any_one_second_window(rate: int) -> None:
    """The limit holds by design: requests that each arrive anywhere within RATE_JITTER_S after their slot
    (here the worst cases: alternately on time and as late as allowed, so that they bunch) never put more
    than ``rate`` into any one-second window [t, t + 1), wherever it starts."""
    times, _ = rate_slots(None, rate, 0.0, rate * 5)
    for late in (0, 1):
        arrivals = sorted(t + (RATE_JITTER_S if i % 2 == late else 0.0) for i, t in enumerate(times))
        for start in arrivals:  # a window holding the most arrivals starts at one of them
            inside = sum(start <= a < start + 1.0 - 1e-9 for a in arrivals)
            assert inside <= rate, (start, inside)


def test_a_missed_slot_is_given_back_past_the_stale_limit_only() -> None:
    """The dispatcher sends a rate-limited delivery up to STALE_SLOT_S after its slot and gives later ones
    back for a fresh slot; a delivery without a slot (not_before 0) is never held back."""
    slot = 1_000.0
    assert not slot_missed(slot, slot - 1.0)  # early: the dispatcher waits for it
    assert not slot_missed(slot, slot)
    assert not slot_missed(slot, slot + STALE_SLOT_S)
    assert slot_missed(slot, slot + STALE_SLOT_S + 0.001)
    assert not slot_missed(0.0, 1_000_000.0)
    assert STALE_SLOT_S < RATE_JITTER_S  # what is left of the margin is for the way to the receiver


class _AlwaysWeighted(FairScheduler):
    """The scheduler without its shortcut for one priority: every choice through the weighted loop."""

    def _choose_one_level(
        self, levels: dict[int, list[Candidate[int]]], remaining: dict[str, int], limit: int
    ) -> list[Candidate[int]]:
        return self._choose_weighted(levels, remaining, limit)


_LEASE = st.tuples(
    st.lists(st.tuples(st.integers(0, 9), st.sampled_from("abc"), st.integers(0, 3)), max_size=12),
    st.fixed_dictionaries({t: st.integers(0, 6) for t in "abc"}),
    st.integers(0, 10),
)


@given(st.lists(_LEASE, min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_shortcut_for_one_priority_chooses_and_keeps_books_as_the_weighted_loop(
    leases: list[tuple[list[tuple[int, str, int]], dict[str, int], int]],
) -> None:
    """Over any sequence of leases, some with one priority ready and some with several, the shortcut makes
    the same choices as the weighted loop and leaves the same credit behind (the later choices agree too)."""
    fast, slow = FairScheduler(), _AlwaysWeighted()
    key = 0
    for rows, caps, limit in leases:
        found = []
        for priority, target, at in rows:
            found.append(Candidate(float(at), key, target, priority, key))
            key += 1
        assert fast.choose(found, caps, limit) == slow.choose(found, caps, limit)
        assert (fast._passes, fast._virtual_time) == (slow._passes, slow._virtual_time)
