"""Replays: re-send the archived events of a time window to the targets that match them now.

A replay is a job on the router (``POST /v1/replays``), saved in the queue's database with its progress.
It reads the window's archived events page by page in acceptance order, matches each against the
routing table as it is now (narrowed to one ``target`` and to an extra ``pattern`` when asked), and puts
each matching event back into the queue as a new event of its own: id ``<replay id>/<original id>``
(:func:`~.queue.archive_records.replay_event_id`), same body and priority, accepted now. Its deliveries
therefore have their own ids and a fresh retry budget, carry ``cxeb-replay-id`` (router.archive) and
count under ``cxeb_replay_*`` metrics, and go through each target's limits and circuit like any other.

Bounded: at most ``rate_per_s`` events are re-sent per second (pages of at most one second's worth,
each followed by the rest of its second). Progress (cursor, counts, heartbeat) is saved after each page.

Across a restart: the job stays ``running`` in the database. The router that ran it takes it back at
its next start (the same ``owner``), or any router sharing the queue does once the heartbeat is older
than ``stale_s``; it continues after the saved cursor. A page that was put but not yet saved is put again
and deduplicated by its event ids, so no event is re-sent twice by one replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from cxone_eventbridge.exceptions import FieldError, InputError, InvalidEventError, InvalidPatternError, QueueError
from cxone_eventbridge.matching import CompiledPattern, compile_pattern
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.router.queue import DeliveryQueue, QueuedEvent
from cxone_eventbridge.router.queue.archive_records import (
    ArchivedEvent,
    ReplayJob,
    ReplayState,
    new_replay_id,
    replay_event_id,
)
from cxone_eventbridge.router.queue.protocols import EventArchive

log = logging.getLogger(__name__)
_ops_log = logging.getLogger("cxone_eventbridge.operations")

DEFAULT_RATE_PER_S: Final = 100.0
MAX_RATE_PER_S: Final = 10_000.0
MAX_PAGE: Final = 200
_RETRY_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What to replay: events accepted in ``[since, until)``, to ``target`` only (or every matching one),
    only those matching ``pattern`` too (JSON text), at most ``rate_per_s`` events per second."""

    since: float
    until: float
    target: str | None = None
    pattern: str | None = None
    rate_per_s: float = DEFAULT_RATE_PER_S


class ReplaySource(Protocol):
    """What a replay needs from the router (``router.event_router.EventRouter`` provides it)."""

    @property
    def queue(self) -> DeliveryQueue: ...

    def match(self, event: Any) -> list[IntegrationTarget]: ...

    def target_names(self) -> list[str]: ...


def check_request(request: ReplayRequest, *, targets: list[str]) -> CompiledPattern | None:
    """The request's pattern compiled; InputError naming every bad field otherwise."""
    errors: list[FieldError] = []
    if request.until <= request.since:
        errors.append(FieldError("until", "must be later than since"))
    if not 0 < request.rate_per_s <= MAX_RATE_PER_S:
        errors.append(FieldError("rate", f"must be more than 0 and at most {MAX_RATE_PER_S:g} events per second"))
    if request.target is not None and request.target not in targets:
        known = ", ".join(targets) or "none"
        errors.append(FieldError("target", f"no target is named {request.target!r} (configured: {known})"))
    compiled = None
    if request.pattern is not None:
        try:
            compiled = compile_pattern(request.pattern)
        except InvalidPatternError as exc:
            errors.append(FieldError("pattern", exc.message))
    if errors:
        raise InputError("invalid replay", errors)
    return compiled


class Replayer:
    """Starts, runs, resumes and reports replay jobs for one router.

    ``runner`` names this router (its queue ``owner``); ``clock`` and ``sleep`` are injected so that tests
    check the pacing without waiting.
    """

    def __init__(
        self,
        router: ReplaySource,
        archive: EventArchive,
        *,
        runner: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stale_s: float = 60.0,
        on_put: Callable[[], None] | None = None,
    ) -> None:
        self._router = router
        self._archive = archive
        self.runner = runner
        self._clock = clock
        self._sleep = sleep
        self._stale_s = stale_s
        self._on_put = on_put  # wakes the dispatcher when a page was put
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def start(self, request: ReplayRequest) -> ReplayJob:
        """Check ``request``, save it as a running job and start it; the job as saved."""
        check_request(request, targets=self._router.target_names())
        now = self._clock()
        job = ReplayJob(
            replay_id=new_replay_id(),
            since=request.since,
            until=request.until,
            target=request.target,
            pattern=request.pattern,
            rate_per_s=request.rate_per_s,
            state=ReplayState.RUNNING,
            created_at=now,
            total=await self._archive.count_archived(since=request.since, until=request.until),
            runner=self.runner,
            heartbeat_at=now,
        )
        await self._archive.save_replay(job)
        _ops_log.info(
            "replay %s started: %d archived events to consider",
            job.replay_id,
            job.total,
            extra={"operation": "replay_started", "replay_id": job.replay_id, "target": job.target},
        )
        self._spawn(job)
        return job

    async def resume(self) -> list[ReplayJob]:
        """Take back the running jobs this router should run (its own, and those whose runner went quiet)."""
        jobs = await self._archive.claim_replays(runner=self.runner, stale_before=self._clock() - self._stale_s)
        for job in jobs:
            log.info("resuming replay %s after %d of %s events", job.replay_id, job.scanned, job.total)
            self._spawn(job)
        return jobs

    def watch(self, *, interval_s: float = 30.0) -> None:
        """Every ``interval_s``, take over jobs whose runner went quiet (another router that died)."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(interval_s), name="cxeb-replay-watch")

    async def _watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.resume()
            except QueueError as exc:  # an outage: the next round tries again
                log.warning("could not look for replays to take over: %s", exc)

    async def job(self, replay_id: str) -> ReplayJob | None:
        return await self._archive.replay_job(replay_id)

    async def jobs(self, *, limit: int = 20) -> list[ReplayJob]:
        return await self._archive.replay_jobs(limit=limit)

    async def cancel(self, replay_id: str) -> ReplayJob | None:
        """Stop a running job (what it re-sent stays sent); the job, or None when unknown."""
        task = self._tasks.pop(replay_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        job = await self._archive.replay_job(replay_id)
        if job is None or job.state is not ReplayState.RUNNING:
            return job
        job = replace(job, state=ReplayState.CANCELLED, finished_at=self._clock())
        await self._archive.save_replay(job)
        return job

    async def wait(self, replay_id: str) -> None:
        """Until this router's run of the job ends (tests)."""
        task = self._tasks.get(replay_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        """Stop running jobs; they stay ``running`` in the database and resume at the next start."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if self._watcher is not None:
            tasks.append(self._watcher)
            self._watcher = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- running one job ---------------------------------------------------------------------------

    def _spawn(self, job: ReplayJob) -> None:
        if job.replay_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"cxeb-replay-{job.replay_id}")
        self._tasks[job.replay_id] = task
        task.add_done_callback(functools.partial(self._forget, job.replay_id))

    def _forget(self, replay_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(replay_id) is task:
            del self._tasks[replay_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("replay %s failed", replay_id, exc_info=task.exception())

    async def _run(self, job: ReplayJob) -> None:
        try:
            await self._run_pages(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job's boundary: a bug fails this replay, recorded, not the router
            log.exception("replay %s failed", job.replay_id)
            latest = await self._archive.replay_job(job.replay_id) or job
            failed = replace(
                latest, state=ReplayState.FAILED, finished_at=self._clock(), error=f"{type(exc).__name__}: {exc}"
            )
            await self._archive.save_replay(failed)

    async def _run_pages(self, job: ReplayJob) -> None:
        pattern = compile_pattern(job.pattern) if job.pattern is not None else None
        page_size = max(1, min(MAX_PAGE, int(job.rate_per_s)))
        while True:
            started = self._clock()
            try:
                after = (
                    (job.cursor_at, job.cursor_seq)
                    if job.cursor_at is not None and job.cursor_seq is not None
                    else None
                )
                page = await self._archive.archived(since=job.since, until=job.until, after=after, limit=page_size)
                if not page:
                    job = replace(job, state=ReplayState.DONE, finished_at=self._clock(), heartbeat_at=self._clock())
                    await self._archive.save_replay(job)
                    _ops_log.info(
                        "replay %s done: %d of %d events re-sent, %d deliveries",
                        job.replay_id,
                        job.replayed,
                        job.scanned,
                        job.deliveries,
                        extra={"operation": "replay_done", "replay_id": job.replay_id, "replayed": job.replayed},
                    )
                    return
                job = await self._replay_page(job, page, pattern)
            except QueueError as exc:  # an outage or a full disk: the same page again, a little later
                log.warning("replay %s: %s; retrying in %.0f s", job.replay_id, exc, _RETRY_S)
                await self._sleep(_RETRY_S)
                continue
            # At most rate_per_s events a second: the rest of this page's share of time.
            rest = started + len(page) / job.rate_per_s - self._clock()
            if rest > 0:
                await self._sleep(rest)

    async def _replay_page(
        self, job: ReplayJob, page: list[ArchivedEvent], pattern: CompiledPattern | None
    ) -> ReplayJob:
        now = self._clock()
        queued: list[QueuedEvent] = []
        pairs: list[tuple[str, str]] = []  # (replay event id, original event id)
        for archived in page:
            targets = self._targets_now(archived, pattern, job.target)
            if targets:
                pairs.append((replay_event_id(job.replay_id, archived.event_id), archived.event_id))
                queued.append(
                    QueuedEvent(
                        event_id=pairs[-1][0],
                        body=archived.body,
                        priority=archived.priority,
                        targets=targets,
                        accepted_at=now,
                    )
                )
        deliveries = 0
        if queued:
            results = await self._router.queue.put(queued)
            # Marked after the put (a crash between the two leaves the link to the original to the resumed job).
            await self._archive.mark_replays(pairs)
            deliveries = sum(len(result.created) for result in results)
            if self._on_put is not None:
                self._on_put()
        last = page[-1]
        job = replace(
            job,
            cursor_at=last.accepted_at,
            cursor_seq=last.seq,
            scanned=job.scanned + len(page),
            replayed=job.replayed + len(queued),
            deliveries=job.deliveries + deliveries,
            heartbeat_at=self._clock(),
            runner=self.runner,
        )
        await self._archive.save_replay(job)
        return job

    def _targets_now(
        self, archived: ArchivedEvent, pattern: CompiledPattern | None, only: str | None
    ) -> tuple[str, ...]:
        try:
            event = json.loads(archived.body)
        except ValueError:  # accepted events are JSON objects; a damaged row is skipped, not fatal
            return ()
        if pattern is not None and not pattern.matches(event):
            return ()
        try:
            names = [target.name for target in self._router.match(event)]
        except InvalidEventError:
            return ()
        return tuple(name for name in names if only is None or name == only)
