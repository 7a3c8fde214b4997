"""The router's HTTP routes for event history and replays (mounted by ``router.http_api``).

Routes (behind the same bearer key as the rest of ``/v1/*``; times are ISO-8601 UTC strings)::

    GET  /v1/events/{id}              the event, each delivery (its own and its replays') and every attempt
    POST /v1/replays                  {since, until, target?, pattern?, rate?} -> 202, the job
    GET  /v1/replays                  the newest replay jobs
    GET  /v1/replays/{id}             one job: state, progress, counts
    POST /v1/replays/{id}/cancel      stop a running job

``since`` and ``until`` take ISO-8601 or a time before now (``-2h``); ``pattern`` an event pattern
(an object, or its JSON text). Without an archive (``--archive-days``) the history still shows the event
and its deliveries while the queue keeps them, without attempts; a replay is refused (409).

Replays are marked in metrics by their own series, ``cxeb_replay_deliveries_total{target, outcome}``
(``delivered`` or ``dead_lettered``): fixed labels, counted from the delivery events of replay ids, every
configured target's series from the first scrape on.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol, runtime_checkable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cxone_eventbridge.exceptions import IngestError, InputError, UnknownTargetError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.moments import iso, parse_moment
from cxone_eventbridge.observe.events import DeliveryDeadLettered, DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.archive import ArchiveKeeper, ArchiveSetup, archive_for
from cxone_eventbridge.router.queue import DeliveryQueue
from cxone_eventbridge.router.queue.archive_records import EventHistory, ReplayJob, replay_of
from cxone_eventbridge.router.replay import DEFAULT_RATE_PER_S, Replayer, ReplayRequest
from cxone_eventbridge.wire import loads

MAX_EVENT_ID_PATH: Final = 1024
_JOBS_SHOWN: Final = 20


@runtime_checkable
class ArchiveSource(Protocol):
    """What these routes need from the router (``router.event_router.EventRouter`` provides it)."""

    @property
    def queue(self) -> DeliveryQueue: ...

    @property
    def archive(self) -> ArchiveSetup | None: ...

    def match(self, event: Any) -> list[IntegrationTarget]: ...

    def target_names(self) -> list[str]: ...

    def resolve_target(self, ref: str) -> str: ...


class ReplayMetrics(Collector):
    """``cxeb_replay_deliveries_total{target, outcome}``: replays' deliveries that finished.

    A collector over the router's current targets, as the other per-target series are: every configured
    target has both series from the first scrape on (at zero), and a removed target's go with it.
    """

    OUTCOMES: Final = ("delivered", "dead_lettered")

    def __init__(self, registry: CollectorRegistry, targets: Callable[[], list[str]]) -> None:
        self._targets = targets
        self._counts: dict[tuple[str, str], int] = {}
        registry.register(self)

    def observe(self, event: ObservedEvent) -> None:
        kind = type(event)
        if kind is DeliverySucceeded:
            outcome = "delivered"
        elif kind is DeliveryDeadLettered:
            outcome = "dead_lettered"
        else:
            return
        assert isinstance(event, DeliverySucceeded | DeliveryDeadLettered)
        if replay_of(event.event_id) is not None:
            key = (event.target, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "cxeb_replay_deliveries",
            "Deliveries made by replays that finished, by target and outcome (delivered or dead_lettered).",
            labels=["target", "outcome"],
        )
        for target in self._targets():
            for outcome in self.OUTCOMES:
                family.add_metric([target, outcome], self._counts.get((target, outcome), 0))
        yield family


class ArchiveRoutes:
    """History and replay routes; ``mount`` adds them (and the replay jobs' lifecycle) to the app."""

    def __init__(
        self,
        router: ArchiveSource,
        *,
        bus: ObserverBus,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._router = router
        self._clock = clock
        setup = router.archive
        # The history is readable without the archive (deliveries' final states, while the queue keeps them).
        self._reader = setup.store if setup is not None else archive_for(router.queue)
        self.replayer: Replayer | None = None
        self.keeper: ArchiveKeeper | None = None
        if setup is not None:
            self.replayer = Replayer(router, setup.store, runner=setup.runner, clock=clock)
            self.keeper = ArchiveKeeper(setup.store, keep_s=setup.keep_s)
        metrics = ReplayMetrics(registry, router.target_names)
        bus.subscribe(metrics.observe)

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/v1/events/{event_id}", self._history)
        app.router.add_post("/v1/replays", self._start)
        app.router.add_get("/v1/replays", self._jobs)
        app.router.add_get("/v1/replays/{replay_id}", self._job)
        app.router.add_post("/v1/replays/{replay_id}/cancel", self._cancel)
        app.on_startup.append(self._started)
        app.on_shutdown.append(self._stopping)

    async def _started(self, _app: web.Application) -> None:
        if self.keeper is not None:
            self.keeper.start()
        if self.replayer is not None:
            await self.replayer.resume()
            self.replayer.watch()

    async def _stopping(self, _app: web.Application) -> None:
        if self.replayer is not None:
            await self.replayer.stop()
        if self.keeper is not None:
            await self.keeper.stop()

    # -- history -----------------------------------------------------------------------------------

    async def _history(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        if len(event_id) > MAX_EVENT_ID_PATH:
            raise _refused(400, "invalid_event_id", "the event id is too long", [("id", "is too long")])
        history = await self._reader.history(event_id)
        if history is None:
            raise _refused(
                404,
                "event_not_found",
                f"no event {event_id!r} is known: never accepted, or pruned"
                + ("" if self._router.archive is not None else " (the router keeps no archive: --archive-days)"),
            )
        return web.json_response(history_to_wire(history, recorded=self._router.archive is not None))

    # -- replays -----------------------------------------------------------------------------------

    def _replayer(self) -> Replayer:
        if self.replayer is None:
            raise _refused(
                409,
                "archive_disabled",
                "this router keeps no archive to replay from; start it with --archive-days N",
            )
        return self.replayer

    async def _start(self, request: web.Request) -> web.Response:
        replayer = self._replayer()
        body = await _json_object(request)
        try:
            job = await replayer.start(self._request_of(body))
        except InputError as exc:
            raise _refused(
                400, "invalid_replay", "invalid replay", [(e.field, e.message) for e in exc.errors]
            ) from None
        return web.json_response(job_to_wire(job), status=202)

    def _request_of(self, body: dict[str, Any]) -> ReplayRequest:
        now = self._clock()
        errors: list[tuple[str, str]] = []
        moments: dict[str, float] = {}
        for field in ("since", "until"):
            value = body.get(field, "now" if field == "until" else None)
            if not isinstance(value, str):
                errors.append((field, "is required: an ISO-8601 time or a time before now such as -2h"))
                continue
            try:
                moments[field] = parse_moment(value, now=now)
            except ValueError as exc:
                errors.append((field, str(exc)))
        target = body.get("target")
        if isinstance(target, str):
            # A name or a control-plane id; one the router does not know is named with the other fields'
            # errors by check_request.
            with contextlib.suppress(UnknownTargetError):
                target = self._router.resolve_target(target)
        elif target is not None:
            errors.append(("target", "must be a target's name or id"))
        pattern = body.get("pattern")
        if isinstance(pattern, dict):
            pattern = json.dumps(pattern)
        elif pattern is not None and not isinstance(pattern, str):
            errors.append(("pattern", "must be an event pattern (a JSON object)"))
        rate = body.get("rate", DEFAULT_RATE_PER_S)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            errors.append(("rate", "must be a number of events per second"))
        if errors:
            raise _refused(400, "invalid_replay", "invalid replay", errors)
        return ReplayRequest(
            since=moments["since"], until=moments["until"], target=target, pattern=pattern, rate_per_s=float(rate)
        )

    async def _jobs(self, _request: web.Request) -> web.Response:
        jobs = await self._replayer().jobs(limit=_JOBS_SHOWN)
        return web.json_response({"items": [job_to_wire(job) for job in jobs]})

    async def _job(self, request: web.Request) -> web.Response:
        job = await self._replayer().job(request.match_info["replay_id"])
        if job is None:
            raise _refused(404, "replay_not_found", f"no replay {request.match_info['replay_id']!r}")
        return web.json_response(job_to_wire(job))

    async def _cancel(self, request: web.Request) -> web.Response:
        job = await self._replayer().cancel(request.match_info["replay_id"])
        if job is None:
            raise _refused(404, "replay_not_found", f"no replay {request.match_info['replay_id']!r}")
        return web.json_response(job_to_wire(job))


def _refused(status: int, code: str, message: str, errors: list[tuple[str, str]] | None = None) -> IngestError:
    # Not an ingest: nothing to count among ingest rejections.
    return IngestError(status, code, message, errors or (), counted=True)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = loads(await request.read())
    except ValueError:
        raise _refused(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _refused(400, "invalid_replay", "the body must be a JSON object")
    return body


def _maybe_iso(seconds: float | None) -> str | None:
    return iso(seconds) if seconds is not None else None


def history_to_wire(history: EventHistory, *, recorded: bool) -> dict[str, Any]:
    """An event's history as the API answers it (camelCase, ISO-8601 times, the event as JSON)."""
    event: Any = None
    if history.body is not None:
        try:
            event = json.loads(history.body)
        except ValueError:
            event = history.body.decode("utf-8", "replace")
    return {
        "eventId": history.event_id,
        "acceptedAt": _maybe_iso(history.accepted_at),
        "priority": history.priority,
        "replayOf": history.replay_of,
        "attemptsRecorded": recorded,
        "event": event,
        "deliveries": [
            {
                "deliveryId": d.delivery_id,
                "target": d.target,
                "state": d.state,
                "attempts": d.attempts,
                "lastStatus": d.last_status,
                "lastError": d.last_error,
                "reason": d.reason,
                "doneAt": _maybe_iso(d.done_at),
                "replayId": d.replay_id,
                "eventId": d.event_id,
                "history": [
                    {
                        "attempt": a.attempt,
                        "at": iso(a.at),
                        "outcome": a.outcome,
                        "status": a.status,
                        "latencyMs": round(a.latency_s * 1000, 3),
                        "category": a.category,
                        "error": a.error,
                    }
                    for a in d.history
                ],
            }
            for d in history.deliveries
        ],
    }


def job_to_wire(job: ReplayJob) -> dict[str, Any]:
    """A replay job as the API answers it."""
    return {
        "replayId": job.replay_id,
        "state": job.state.value,
        "since": iso(job.since),
        "until": iso(job.until),
        "target": job.target,
        "pattern": json.loads(job.pattern) if job.pattern is not None else None,
        "ratePerSecond": job.rate_per_s,
        "total": job.total,
        "scanned": job.scanned,
        "replayed": job.replayed,
        "deliveries": job.deliveries,
        "createdAt": iso(job.created_at),
        "finishedAt": _maybe_iso(job.finished_at),
        "error": job.error,
        "runner": job.runner,
    }
