"""Circuit breaker state machine with an injected clock."""

from __future__ import annotations

import pytest

from cxone_eventbridge.router.circuit import CircuitBreaker, CircuitPolicy, Circuits, CircuitState

from ..clocks import ManualClock


def breaker(clock: ManualClock, changes: list[tuple[str, CircuitState]] | None = None) -> CircuitBreaker:
    policy = CircuitPolicy(failure_threshold=3, open_s=10, max_open_s=25)
    sink = changes if changes is not None else []
    return CircuitBreaker("t", policy=policy, clock=clock, on_change=lambda t, s: sink.append((t, s)))


def test_opens_after_consecutive_failures_and_blocks_sending() -> None:
    """Three failures in a row open the circuit: no slots until open_s has passed."""
    clock = ManualClock(1000.0)
    b = breaker(clock)
    for _ in range(2):
        b.record_failure()
    assert b.allowance(8) == 8
    b.record_failure()
    assert b.state is CircuitState.OPEN
    assert b.allowance(8) == 0
    assert b.open_until == 1010.0


def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive; a success in between starts the count again."""
    clock = ManualClock(1000.0)
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is CircuitState.CLOSED


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    """After open_s, one delivery is the probe; its success closes the circuit."""
    clock = ManualClock(1000.0)
    changes: list[tuple[str, CircuitState]] = []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.state is CircuitState.HALF_OPEN
    assert b.allowance(8) == 1
    b.started()
    assert b.allowance(8) == 0
    b.record_success()
    assert b.state is CircuitState.CLOSED
    assert [s for _, s in changes] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_failed_probe_reopens_for_twice_as_long_capped() -> None:
    """A failed probe doubles the open time, up to max_open_s."""
    clock = ManualClock(1000.0)
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    for expected in (20, 25):
        clock.now = b.open_until or clock.now
        assert b.state is CircuitState.HALF_OPEN
        b.started()
        b.record_failure()
        assert b.open_until == pytest.approx(clock.now + expected)


def test_cancelled_probe_frees_the_probe_slot() -> None:
    """A probe that ends without an answer (shutdown) lets the next one through."""
    clock = ManualClock(1000.0)
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    b.started()
    b.cancelled()
    assert b.allowance(8) == 1


def test_circuits_report_the_next_half_open_time() -> None:
    """The dispatcher can wake exactly when an open circuit may probe."""
    clock = ManualClock(1000.0)
    circuits = Circuits(policy=CircuitPolicy(failure_threshold=1, open_s=5), clock=clock)
    assert circuits.next_change_at() is None
    circuits.get("a").record_failure()
    assert circuits.next_change_at() == 1005.0
    assert circuits.states() == {"a": CircuitState.OPEN}


def test_policy_validation() -> None:
    """Nonsense thresholds are refused."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="open_s"):
        CircuitPolicy(open_s=10, max_open_s=5)
