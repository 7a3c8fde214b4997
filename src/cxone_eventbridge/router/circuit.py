"""Per-target circuit breakers: a dead endpoint is probed, not hammered.

``closed``: deliveries flow. After ``failure_threshold`` consecutive retryable failures (5xx, 408, 429,
timeouts, connection and TLS errors) the circuit *opens* for ``open_s``; while open, the target's
deliveries stay pending in the queue: they are not leased, so waiting spends none of their retries.
When the time is up the circuit is *half-open*: exactly one real pending delivery (signed, as every
delivery is) is let through as the probe. Its success closes the circuit; its failure opens it again for
twice as long, up to ``max_open_s``. Any success closes the circuit.

The clock is injected; nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """When a circuit opens and how long it stays open."""

    failure_threshold: int = 5
    open_s: float = 5.0
    max_open_s: float = 300.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not 0 < self.open_s <= self.max_open_s:
            raise ValueError("open_s must be > 0 and <= max_open_s")


StateListener = Callable[[str, CircuitState], None]


class CircuitBreaker:
    """One target's breaker."""

    def __init__(
        self,
        target: str,
        *,
        policy: CircuitPolicy,
        clock: Callable[[], float],
        on_change: StateListener | None = None,
    ) -> None:
        self.target = target
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._open_s = policy.open_s
        self._open_until = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() >= self._open_until:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    @property
    def open_until(self) -> float | None:
        """When an open circuit lets its next probe through; None unless open."""
        return self._open_until if self.state is CircuitState.OPEN else None

    def allowance(self, cap: int) -> int:
        """How many more deliveries may be sent now, given ``cap`` free slots for the target."""
        state = self.state
        if state is CircuitState.CLOSED:
            return cap
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            return min(cap, 1)
        return 0

    def probe_now(self) -> bool:
        """An operator's probe (``cxeb router probe``): an open circuit goes half-open now, so its next
        delivery is the probe. True unless the circuit is closed (nothing to probe)."""
        if self._state is CircuitState.OPEN:
            self._open_until = self._clock()
        return self.state is not CircuitState.CLOSED

    def started(self) -> None:
        """A delivery was sent; in half-open state it is the probe."""
        if self.state is CircuitState.HALF_OPEN:
            self._probe_in_flight = True

    def cancelled(self) -> None:
        """A sent delivery ended without an answer that says anything about the endpoint (shutdown)."""
        self._probe_in_flight = False

    def record_success(self) -> None:
        self._failures = 0
        self._open_s = self._policy.open_s
        self._probe_in_flight = False
        if self._state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        state = self.state
        if state is CircuitState.HALF_OPEN and self._probe_in_flight:
            self._probe_in_flight = False
            self._open_s = min(self._open_s * 2, self._policy.max_open_s)
            self._open()
            return
        if state is not CircuitState.CLOSED:
            return  # an answer to a request sent before the circuit opened
        self._failures += 1
        if self._failures >= self._policy.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._open_until = self._clock() + self._open_s
        self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        if state is CircuitState.CLOSED:
            self._failures = 0
        if self._on_change is not None:
            self._on_change(self.target, state)


class Circuits:
    """The breakers of every target, created on first use."""

    def __init__(
        self, *, policy: CircuitPolicy, clock: Callable[[], float], on_change: StateListener | None = None
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            breaker = CircuitBreaker(target, policy=self._policy, clock=self._clock, on_change=self._on_change)
            self._breakers[target] = breaker
        return breaker

    def forget(self, target: str) -> None:
        self._breakers.pop(target, None)

    def states(self) -> dict[str, CircuitState]:
        return {name: breaker.state for name, breaker in self._breakers.items()}

    def next_change_at(self) -> float | None:
        """The earliest time an open circuit becomes half-open, so the dispatcher can wake for it."""
        times = [t for breaker in self._breakers.values() if (t := breaker.open_until) is not None]
        return min(times, default=None)
