"""What follows from one attempt: its outcome published and told to the circuits, then settled in the queue.

:meth:`AttemptOutcomes.attempt_ended` is the one place where an attempt's outcome is known (every attempt
that was sent, or that failed before sending, passes through it once, before its slot is reused);
:meth:`AttemptOutcomes.settle` then classifies the outcome and records it in the queue:

- success → ``ack``;
- a retryable failure (5xx, 429, 408, timeouts, connection errors) → ``reschedule`` after the target's
  backoff (``Retry-After`` honoured up to a bound), unless the retries are spent (``retries_exhausted``,
  or ``auth_failed`` when the token endpoint kept failing), the next try would pass the event's maximum
  age (``expired``) or the target was removed meanwhile (``target_removed``);
- 410 Gone → dead letter ``gone`` and the target disabled;
- refused by the egress check → dead letter ``egress_denied``;
- any other 4xx → dead letter ``permanent`` (``auth_failed`` for a rejected token).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import (
    DeliveryAttempted,
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    ObserverBus,
)
from cxone_eventbridge.retry import next_delay
from cxone_eventbridge.router.delivery import AttemptOutcome, AttemptResult
from cxone_eventbridge.router.dispatch_targets import TargetBook
from cxone_eventbridge.router.queue import DeadLetter, DeadLetterReason, Delivery, WorkCycle


class AttemptOutcomes:
    """Publishes each attempt's outcome and records it in the queue (``wake_at`` learns when a retry is due)."""

    def __init__(
        self,
        queue: WorkCycle,
        book: TargetBook,
        *,
        bus: ObserverBus,
        retry_base_s: float,
        retry_cap_s: float,
        max_retry_after_s: float,
        max_event_age_s: float,
        wake_at: Callable[[float], None],
    ) -> None:
        self._queue = queue
        self._book = book
        self._bus = bus
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._max_retry_after_s = max_retry_after_s
        self._max_event_age_s = max_event_age_s
        self._wake_at = wake_at

    def attempt_ended(self, delivery: Delivery, result: AttemptResult, now: float) -> None:
        """An attempt's outcome is known: publish it and tell the target's circuits.

        Called before the attempt's slot is reused, so a failure that opens the circuit stops the next send.
        """
        self._bus.publish(
            DeliveryAttempted(
                event_id=delivery.event_id,
                delivery_id=delivery.delivery_id,
                target=delivery.target,
                attempt=delivery.attempts + 1,
                outcome=result.outcome.value,
                status_code=result.status,
                latency_s=result.latency_s,
                error=result.error,
                at=now,
                delivery_key=delivery.key,
            )
        )
        self._book.attempt_ended(delivery, result, now)

    async def settle(self, delivery: Delivery, target: IntegrationTarget, result: AttemptResult, now: float) -> None:
        """Record the outcome in the queue: ack, reschedule or dead-letter."""
        name = delivery.target
        attempt = delivery.attempts + 1
        outcome = result.outcome
        if outcome is AttemptOutcome.SUCCESS:
            await self._queue.ack(delivery, status=result.status)
            self._bus.publish(
                DeliverySucceeded(
                    event_id=delivery.event_id,
                    delivery_id=delivery.delivery_id,
                    target=name,
                    attempts=attempt,
                    end_to_end_s=max(0.0, now - delivery.accepted_at),
                    at=now,
                )
            )
            return
        if outcome.retryable:
            policy = target.retry_policy
            if name not in self._book.targets:  # removed while this attempt was in flight: no retry to wait for
                await self.dead_letter(delivery, DeadLetterReason.TARGET_REMOVED, result, now)
                return
            if attempt > policy.max_retries:
                spent = DeadLetterReason.AUTH_FAILED if result.auth_failed else DeadLetterReason.RETRIES_EXHAUSTED
                await self.dead_letter(delivery, spent, result, now)
                return
            delay = next_delay(
                policy.backoff_strategy,
                attempt - 1,
                retry_after_s=result.retry_after_s,
                base_s=self._retry_base_s,
                cap_s=self._retry_cap_s,
                max_retry_after_s=self._max_retry_after_s,
            )
            next_at = now + delay
            if next_at - delivery.accepted_at > self._max_event_age_s:
                await self.dead_letter(delivery, DeadLetterReason.EXPIRED, result, now)
                return
            await self._queue.reschedule(delivery, delay_s=delay, last_status=result.status, last_error=result.error)
            self._wake_at(next_at)
            self._bus.publish(
                DeliveryRetryScheduled(
                    event_id=delivery.event_id,
                    delivery_id=delivery.delivery_id,
                    target=name,
                    attempt=attempt,
                    delay_s=delay,
                    reason=f"status {result.status}" if result.status is not None else (result.error or "error"),
                    at=now,
                    status_code=result.status,
                    error=result.error,
                )
            )
            return
        if outcome is AttemptOutcome.GONE:
            await self.dead_letter(delivery, DeadLetterReason.GONE, result, now)
            self._book.disable(name, target, now)
            return
        if outcome is AttemptOutcome.REFUSED:
            await self.dead_letter(delivery, DeadLetterReason.EGRESS_DENIED, result, now)
            return
        reason = DeadLetterReason.AUTH_FAILED if result.auth_failed else DeadLetterReason.PERMANENT
        await self.dead_letter(delivery, reason, result, now)

    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, result: AttemptResult, now: float
    ) -> None:
        await self._queue.dead_letter(delivery, reason=reason.value, last_status=result.status, last_error=result.error)
        self._bus.publish(
            DeliveryDeadLettered(
                event_id=delivery.event_id,
                delivery_id=delivery.delivery_id,
                target=delivery.target,
                attempts=delivery.attempts + 1,
                reason=reason.value,
                last_status=result.status,
                at=now,
                last_error=result.error,
            )
        )

    def publish_dead_letters(self, letters: Sequence[DeadLetter], now: float) -> None:
        """Dead letters made by the queue itself (expired, a removed target's work)."""
        for letter in letters:
            self._bus.publish(
                DeliveryDeadLettered(
                    event_id=letter.event_id,
                    delivery_id=letter.delivery_id,
                    target=letter.target,
                    attempts=letter.attempts,
                    reason=letter.reason,
                    last_status=letter.last_status,
                    at=now,
                    last_error=letter.last_error,
                )
            )
