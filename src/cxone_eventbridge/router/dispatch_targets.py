"""What the dispatcher knows about each target: its settings, whether it is disabled, and its circuit.

Two circuits per target: this router's breaker (:class:`~.circuit.Circuits`, fed by each attempt's
outcome) and the one every router sharing the queue sees (:class:`~.queue.SharedCircuit`, kept by the
queue). When this router's breaker opens, the queue holds the target's deliveries for every router; once
the period ends, one delivery at a time goes through as the probe (whichever router leases it), a failed
probe opens it again for twice as long and a success closes it for all.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import CircuitStateChanged, ObserverBus, TargetChanged
from cxone_eventbridge.router.circuit import CircuitPolicy, Circuits, CircuitState
from cxone_eventbridge.router.delivery import AttemptOutcome, AttemptResult
from cxone_eventbridge.router.queue import Delivery, SharedCircuit, TargetLimits, TargetStateStore

Background = Callable[[Coroutine[Any, Any, None]], None]


def target_limits(target: IntegrationTarget) -> TargetLimits:
    return TargetLimits(max_in_flight=target.max_in_flight, rate_per_s=target.rate_limit_per_second)


class TargetBook:
    """Targets by name, their limits, the disabled ones, and both circuits of each.

    ``background`` writes shared circuit changes to the queue without holding up a delivery;
    ``on_open(name)`` is told when this router's breaker opens (the dispatcher gives back what it leased
    ahead for the target), ``on_close()`` when it closes or half-opens (work may be ready again);
    ``on_gone(name)`` when a target answered 410 and was disabled.
    """

    def __init__(
        self,
        queue: TargetStateStore,
        *,
        bus: ObserverBus,
        policy: CircuitPolicy,
        clock: Callable[[], float],
        background: Background,
        on_open: Callable[[str], None],
        on_close: Callable[[], None],
        on_gone: Callable[[str], None] | None = None,
    ) -> None:
        self._queue = queue
        self._bus = bus
        self._policy = policy
        self._clock = clock
        self._background = background
        self._on_open = on_open
        self._on_close = on_close
        self._on_gone = on_gone
        self.targets: dict[str, IntegrationTarget] = {}
        self.limits: dict[str, TargetLimits] = {}  # only targets with a limit
        self.disabled: set[str] = set()
        self.shared: dict[str, SharedCircuit] = {}  # open or half-open for every router
        self.circuits = Circuits(policy=policy, clock=clock, on_change=self._circuit_changed)

    def set_targets(self, targets: Mapping[str, IntegrationTarget]) -> set[str]:
        """Replace the targets (by name); the names that are gone."""
        removed = set(self.targets) - set(targets)
        for name in removed:
            self.circuits.forget(name)
        self.targets = dict(targets)
        self.limits = {name: limits for name, t in targets.items() if (limits := target_limits(t)).limited}
        return removed

    def attempt_ended(self, delivery: Delivery, result: AttemptResult, now: float) -> None:
        """Tell the target's circuits what an attempt's outcome says about the endpoint."""
        name = delivery.target
        breaker = self.circuits.get(name)
        outcome = result.outcome
        shared = self.shared.get(name)
        if outcome.retryable:
            breaker.record_failure()
            if delivery.probe:
                # A failed probe through the circuit every router shares: open it again, twice as long.
                last = shared.open_s if shared is not None else self._policy.open_s
                open_for = min(last * 2, self._policy.max_open_s)
                self.shared[name] = SharedCircuit(now + open_for, open_for)
                self._background(self._queue.open_circuit(name, open_for_s=open_for))
        elif outcome is AttemptOutcome.REFUSED or result.auth_failed:
            breaker.cancelled()  # nothing was sent: it says nothing about the endpoint
        else:
            # Success, 410 or a permanent 4xx: the endpoint answered, so it is up.
            breaker.record_success()
            if shared is not None or delivery.probe:
                self.shared.pop(name, None)
                self._background(self._queue.close_circuit(name))

    async def probe(self, name: str, now: float) -> bool:
        """Half-open the target's circuits now, this router's and the shared one (``cxeb router probe``);
        False when neither was open or half-open."""
        local = self.circuits.get(name).probe_now()
        shared = await self._queue.probe_circuit(name)
        if shared and (known := self.shared.get(name)) is not None:
            self.shared[name] = SharedCircuit(min(known.open_until, now), known.open_s)
        return local or shared

    def disable(self, name: str, target: IntegrationTarget, now: float) -> None:
        """The target answered 410 Gone: no more deliveries to it until enabled."""
        if name in self.disabled:
            return
        self.disabled.add(name)
        self._bus.publish(
            TargetChanged(
                action="disabled", target=name, target_id=target.id, at=now, details={"reason": "gone", "status": 410}
            )
        )
        if self._on_gone is not None:
            self._on_gone(name)

    def _circuit_changed(self, target: str, state: CircuitState) -> None:
        until = self.circuits.get(target).open_until if state is CircuitState.OPEN else None
        self._bus.publish(CircuitStateChanged(target=target, state=state.value, at=self._clock(), until=until))
        if state is CircuitState.OPEN:
            self._on_open(target)  # waiting must not spend their leases, nor their retries
            if until is not None:  # every router sharing the queue holds the target's deliveries too
                open_for = max(until - self._clock(), 0.001)
                self.shared[target] = SharedCircuit(until, open_for)
                self._background(self._queue.open_circuit(target, open_for_s=open_for))
        else:
            self._on_close()
