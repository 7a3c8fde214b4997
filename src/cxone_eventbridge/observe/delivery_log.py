"""Delivery outcomes as log lines: an observer, so that logs are one more consumer of the frozen records.

Each line carries ``event_id``, ``delivery_id`` and ``target`` as ``extra`` fields, so ``--log-format json``
lines can be joined with the audit log and the receiver's records.
"""

from __future__ import annotations

import logging

from cxone_eventbridge.observe.events import (
    DeliveryDeadLettered,
    DeliveryRetryScheduled,
    DeliverySucceeded,
    ObservedEvent,
)

_delivery_log = logging.getLogger("cxone_eventbridge.deliveries")


def log_delivery_outcomes(event: ObservedEvent) -> None:
    """An ``ObserverBus`` observer: retries (INFO), dead letters (WARNING) and deliveries (DEBUG) as log lines.

    Each line carries ``event_id``, ``delivery_id`` and ``target`` as fields, so ``--log-format json``
    lines can be joined with the audit log and the receiver's records.
    """
    if isinstance(event, DeliveryRetryScheduled):
        _delivery_log.info(
            "delivery %s to %s will be retried in %.2fs (%s)",
            event.delivery_id,
            event.target,
            event.delay_s,
            event.reason,
            extra={"event_id": event.event_id, "delivery_id": event.delivery_id, "target": event.target},
        )
    elif isinstance(event, DeliveryDeadLettered):
        _delivery_log.warning(
            "delivery %s to %s dead-lettered after %d attempt(s): %s",
            event.delivery_id,
            event.target,
            event.attempts,
            event.reason,
            extra={"event_id": event.event_id, "delivery_id": event.delivery_id, "target": event.target},
        )
    elif isinstance(event, DeliverySucceeded) and _delivery_log.isEnabledFor(logging.DEBUG):
        _delivery_log.debug(
            "delivery %s to %s succeeded after %d attempt(s)",
            event.delivery_id,
            event.target,
            event.attempts,
            extra={"event_id": event.event_id, "delivery_id": event.delivery_id, "target": event.target},
        )
