"""How hard and how patiently the dispatcher works: its options (the table in docs/delivery.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cxone_eventbridge.router.circuit import CircuitPolicy


@dataclass(frozen=True, slots=True)
class DispatcherOptions:
    """How hard and how patiently the dispatcher works. Times in seconds."""

    max_in_flight: int = 256
    per_target_in_flight: int = 64
    lease_s: float = 30.0
    lease_batch: int = 256
    prefetch: int = 64
    poll_interval_s: float = 0.25
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    max_retry_after_s: float = 3600.0
    max_event_age_s: float = 86_400.0
    retention_s: float = 86_400.0
    housekeeping_interval_s: float = 1.0
    prune_interval_s: float = 300.0
    retryable_4xx: frozenset[int] = frozenset()
    circuit: CircuitPolicy = field(default_factory=CircuitPolicy)

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.per_target_in_flight < 1:
            raise ValueError("max_in_flight and per_target_in_flight must be >= 1")
        if not 0 < self.lease_s <= 300:
            raise ValueError("lease_s must be in (0, 300]")
        if self.prefetch < 0:
            raise ValueError("prefetch must be >= 0")
