"""The shared delivery queue: PostgreSQL, for any number of routers on any number of machines.

Driver: asyncpg (binary protocol, prepared statements cached per connection; the queue-only cycle in
``benchmarks/bench_queue.py`` measured it against psycopg 3, see docs/delivery.md).

How it keeps every semantic of the embedded queue across routers:

- ``put`` is one transaction (events, then their deliveries, then a ``NOTIFY``), so an event and its
  deliveries commit together; every router ``LISTEN``s and leases at once instead of at its next poll.
- ``lease`` locks ready candidates with ``FOR UPDATE SKIP LOCKED`` (routers never wait on each other's
  rows), lets the shared :class:`~..scheduler.FairScheduler` choose, and claims the chosen ones under a
  fresh lease token. A limited target's ``target_state`` row is locked for the lease, so its leases in
  flight are counted and its send slots taken by one router at a time. When the ready work is of one
  priority and no target has limits, the lease is one statement that claims what the scheduler would
  choose (and the scheduler still keeps its books): one round trip instead of four.
- Time is the database's ``now()``: one clock for every machine. The times on a returned
  :class:`~..records.Delivery` are converted to this process's clock.
- A router that dies leaves leases that end; ``reclaim`` (every router's housekeeping) makes them
  pending again, and the others deliver them. Live routers renew the leases of attempts in flight.
- ``put`` and everything an operator or the housekeeping does commit durably; lease bookkeeping
  (lease, renew, ack, release) commits without waiting for the disk, on connections of its own: a
  database crash can undo it only as a redelivery (docs/delivery.md, "What a database crash can undo").
- The database going away surfaces as :class:`~cxone_eventbridge.exceptions.QueueUnavailableError`;
  the pool reconnects on the next operation and the listener reconnects with backoff.

The queue is assembled from one module per job of :class:`~cxone_eventbridge.router.queue.DeliveryQueue`:
``work_cycle``, ``dead_letters``, ``maintenance`` and ``target_state``, all on ``connection`` (pool,
migrations, LISTEN, clock); their SQL is in ``statements``, their tables in ``schema``.
"""

from __future__ import annotations

from cxone_eventbridge.router.queue.postgres.dead_letters import PostgresDeadLetters
from cxone_eventbridge.router.queue.postgres.maintenance import PostgresMaintenance
from cxone_eventbridge.router.queue.postgres.target_state import PostgresTargetState
from cxone_eventbridge.router.queue.postgres.work_cycle import PostgresWorkCycle


class PostgresQueue(PostgresWorkCycle, PostgresDeadLetters, PostgresMaintenance, PostgresTargetState):
    """A :class:`~cxone_eventbridge.router.queue.DeliveryQueue` in a PostgreSQL schema, shared by routers.

    ``dsn`` is a ``postgresql://`` URL (never logged: it may carry a password); ``schema`` the schema the
    queue's tables live in. ``owner`` names this router (stable across restarts), ``incarnation`` this
    run. ``migrate`` applies missing schema steps on open; otherwise a database behind this code is
    refused with a message naming ``cxeb router migrate``. ``clock`` replaces the database's clock (tests).
    """

    async def __aenter__(self) -> PostgresQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
