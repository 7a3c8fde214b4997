"""The durable delivery queue: a seam split by job, frozen records, one scheduler, and its backends.

- :mod:`.records` — what goes in and comes out (``Delivery`` with an opaque key and a lease token).
- :mod:`.protocols` — the seam: ``WorkCycle``, ``DeadLetterStore``, ``Maintenance``, ``TargetStateStore``
  and ``DeliveryQueue``, all four.
- :mod:`.scheduler` — the one pure scheduler (priority fairness, per-target caps and limits).
- :mod:`.sqlite` — the embedded backend (one file, one router); :mod:`.postgres` — the shared one
  (any number of routers on any number of machines).
"""

from cxone_eventbridge.router.queue.protocols import (
    DeadLetterStore,
    DeliveryQueue,
    Maintenance,
    TargetStateStore,
    WorkCycle,
)
from cxone_eventbridge.router.queue.records import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    DeliveryState,
    PutResult,
    QueuedEvent,
    QueueStats,
    SharedCircuit,
    TargetLimits,
    delivery_id_for,
)

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterStore",
    "Delivery",
    "DeliveryQueue",
    "DeliveryState",
    "Maintenance",
    "PutResult",
    "QueueStats",
    "QueuedEvent",
    "SharedCircuit",
    "TargetLimits",
    "TargetStateStore",
    "WorkCycle",
    "delivery_id_for",
]
