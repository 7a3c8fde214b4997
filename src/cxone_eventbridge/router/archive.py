"""The event archive as a router uses it: its store for a queue, the attempt recorder, replay headers, upkeep.

With ``cxeb router serve --archive-days N`` a router keeps every event it accepts (those that matched no
target too) for N days in the queue's own database, records every delivery attempt (time, HTTP status,
latency, error category), and can replay a window of archived events (:mod:`.replay`). Without it none
of this runs: the attempt recorder is not subscribed and the delivery path is unchanged.

Why the history is recorded only with the archive on: it is the one part of this that sits on the
delivery hot path (a row per attempt), and without the archive the queue already keeps each delivery's
state, attempt count and last status/error until it is pruned, which is what ``router events show``
shows then. Measured in docs/router.md ("Archive and replay").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cxone_eventbridge.exceptions import QueueError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import DeliveryAttempted, ObservedEvent
from cxone_eventbridge.observe.reasons import failure_reason
from cxone_eventbridge.router.delivery import HeaderHook
from cxone_eventbridge.router.queue import Delivery, DeliveryQueue
from cxone_eventbridge.router.queue.archive_records import AttemptRecord, replay_of
from cxone_eventbridge.router.queue.postgres import PostgresQueue
from cxone_eventbridge.router.queue.postgres.archive import PostgresArchive
from cxone_eventbridge.router.queue.protocols import EventArchive
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
from cxone_eventbridge.router.queue.sqlite.archive import SQLiteArchive

log = logging.getLogger(__name__)

DAY_S: Final = 86_400.0
REPLAY_HEADER: Final = "cxeb-replay-id"
_NO_HEADERS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class ArchiveSetup:
    """A router's archive: its store, how long it keeps events (seconds), and the name its replay jobs run
    under (the router's queue ``owner``, stable across restarts)."""

    store: EventArchive
    keep_s: float
    runner: str


def archive_for(queue: DeliveryQueue) -> EventArchive:
    """The archive kept beside ``queue``, in its database (ValueError for a backend without one)."""
    if isinstance(queue, SQLiteQueue):
        return SQLiteArchive(queue)
    if isinstance(queue, PostgresQueue):
        return PostgresArchive(queue)
    raise ValueError(f"no event archive for a {type(queue).__name__}")


class AttemptRecorder:
    """A bus observer that hands every finished attempt to the archive.

    The dispatcher publishes :class:`DeliveryAttempted` at the point where an attempt's outcome is known
    and before it records the ack, retry or dead letter: the row joins that same group of writes.
    """

    def __init__(self, archive: EventArchive) -> None:
        self._archive = archive

    def __call__(self, event: ObservedEvent) -> None:
        if type(event) is not DeliveryAttempted:
            return
        failed = event.outcome != "success"
        self._archive.record_attempt(
            AttemptRecord(
                event.delivery_key,
                event.attempt,
                event.at,
                event.outcome,
                event.status_code,
                event.latency_s,
                failure_reason(event.status_code, event.error).value if failed else None,
                event.error,
            )
        )


def replay_headers(_target: IntegrationTarget, delivery: Delivery) -> Mapping[str, str]:
    """``cxeb-replay-id: <replay id>`` on every attempt of a replay's delivery (a prefix check otherwise)."""
    replay = replay_of(delivery.event_id)
    return {REPLAY_HEADER: replay[0]} if replay is not None else _NO_HEADERS


def with_replay_headers(hook: HeaderHook | None) -> HeaderHook:
    """``hook`` (tracing's, or none) followed by :func:`replay_headers`."""
    if hook is None:
        return replay_headers

    def both(target: IntegrationTarget, delivery: Delivery) -> Mapping[str, str]:
        headers = dict(hook(target, delivery))
        headers.update(replay_headers(target, delivery))
        return headers

    return both


class ArchiveKeeper:
    """Prunes the archive every ``interval_s``: events, attempts and finished replays older than ``keep_s``.

    The queue's own pruning keeps delivered rows for the archive period too (the composition root raises
    ``retention_s`` to it), so an archived event keeps its deliveries' final states; this removes what that
    pruning does not reach: events that matched nothing, attempts, and replay jobs.
    """

    def __init__(
        self,
        archive: EventArchive,
        *,
        keep_s: float,
        interval_s: float = 300.0,
    ) -> None:
        self._archive = archive
        self.keep_s = keep_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cxeb-archive-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune_once(self) -> int:
        started = time.perf_counter()
        pruned = await self._archive.prune_archive(keep_s=self.keep_s)
        if pruned:
            log.info("archive: pruned %d rows in %.3f s", pruned, time.perf_counter() - started)
        return pruned

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except QueueError as exc:  # a full disk or an outage: tried again at the next interval
                log.warning("archive pruning failed (%s); trying again later", exc)
            await asyncio.sleep(self._interval_s)
