"""Replays (router/replay.py) on a real SQLite queue, with an injected clock and sleep: pacing, matching now,
resuming without sending twice, cancelling, failing; and the archive's pieces around them."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.moments import iso, parse_moment
from cxone_eventbridge.observe.events import DeliveryAttempted, EventAccepted
from cxone_eventbridge.router.archive import (
    REPLAY_HEADER,
    ArchiveKeeper,
    AttemptRecorder,
    archive_for,
    replay_headers,
    with_replay_headers,
)
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.queue import Delivery, QueuedEvent
from cxone_eventbridge.router.queue.archive_records import ReplayJob, ReplayState, replay_event_id, replay_of
from cxone_eventbridge.router.queue.protocols import EventArchive
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
from cxone_eventbridge.router.replay import Replayer, ReplayRequest, check_request

T0 = 1_700_000_000.0


class FakeTime:
    """A clock and a sleep that moves it: the replay's pacing is read, never waited for."""

    def __init__(self) -> None:
        self.now = T0 + 3600
        self.slept: list[float] = []
        self.gate: asyncio.Event | None = None  # when set up, each sleep waits for it

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.gate is not None:
            await self.gate.wait()


def target(name: str, pattern: dict[str, Any] | None = None) -> IntegrationTarget:
    fields: dict[str, Any] = {"name": name, "endpoint": f"https://{name}.example.com/hooks"}
    if pattern is not None:
        fields["event_pattern"] = pattern
    return IntegrationTarget(**fields)


@pytest.fixture
async def router(tmp_path: Path) -> AsyncIterator[EventRouter]:
    """A router (not delivering) on a SQLite queue that keeps unmatched events, with two targets."""
    queue = SQLiteQueue(tmp_path / "queue.db", clock=lambda: T0 + 3600, keep_unmatched=True)
    router = EventRouter(queue, targets=[target("crm"), target("calls", {"type": ["call"]})])
    await queue.open()
    yield router
    await queue.close()


async def archive_events(router: EventRouter, count: int, *, kind: str = "call") -> None:
    await router.queue.put(
        [QueuedEvent(f"e{i}", json.dumps({"id": f"e{i}", "type": kind}).encode(), 5, (), T0 + i) for i in range(count)]
    )


def replayer(router: EventRouter, time: FakeTime, **options: Any) -> Replayer:
    return Replayer(router, archive_for(router.queue), runner="here", clock=time, sleep=time.sleep, **options)


async def test_a_replay_re_sends_each_matching_event_as_a_new_event_at_a_bounded_rate(router: EventRouter) -> None:
    """250 events at 100/s go in pages of 100, each followed by the rest of its second; each event is put
    again as `<replay id>/<id>` to the targets it matches now, and the job counts it all."""
    await archive_events(router, 250)
    time = FakeTime()
    runner = replayer(router, time)
    job = await runner.start(ReplayRequest(since=T0, until=T0 + 1000, rate_per_s=100))
    assert (job.state, job.total, job.runner) == (ReplayState.RUNNING, 250, "here")
    await runner.wait(job.replay_id)
    done = await runner.job(job.replay_id)
    assert done is not None
    assert (done.state, done.scanned, done.replayed, done.deliveries) == (ReplayState.DONE, 250, 250, 500)
    assert time.slept == pytest.approx([1.0, 1.0, 0.5])  # no page took time of its own on this clock
    assert (await router.queue.stats()).pending_by_target == {"crm": 250, "calls": 250}
    leased = await router.queue.lease({"crm": 100, "calls": 100}, limit=200, lease_s=30)
    assert {replay_of(d.event_id) for d in leased if d.event_id.endswith("/e7")} <= {(job.replay_id, "e7")}
    assert all(replay_of(d.event_id) is not None for d in leased)
    assert all(d.accepted_at == T0 + 3600 for d in leased)  # accepted now: a fresh age and retry budget


async def test_a_replay_matches_the_targets_of_now_narrowed_by_target_and_pattern(router: EventRouter) -> None:
    """--target keeps one of the matching targets; --pattern keeps only the events it matches."""
    await archive_events(router, 3, kind="call")
    await router.queue.put([QueuedEvent("chat", b'{"type":"chat","n":1}', 5, (), T0 + 10)])
    time = FakeTime()
    runner = replayer(router, time)
    job = await runner.start(
        ReplayRequest(since=T0, until=T0 + 100, target="calls", pattern='{"type": ["call", "chat"]}')
    )
    await runner.wait(job.replay_id)
    done = await runner.job(job.replay_id)
    assert done is not None
    assert (done.scanned, done.replayed, done.deliveries) == (4, 3, 3)  # chat matches no "calls" rule
    leased = await router.queue.lease({"crm": 100, "calls": 100}, limit=100, lease_s=30)
    assert {d.target for d in leased} == {"calls"}


async def test_a_resumed_replay_sends_nothing_twice(router: EventRouter) -> None:
    """A router that stopped mid-replay (and even one that put a page without saving it) resumes after the
    saved cursor; what was put before is deduplicated by its replay event ids."""
    await archive_events(router, 30)
    time = FakeTime()
    time.gate = asyncio.Event()  # the first page's pause never ends: the router "stops" there
    first = replayer(router, time)
    job = await first.start(ReplayRequest(since=T0, until=T0 + 100, target="crm", rate_per_s=10))
    async with asyncio.timeout(10):
        while not time.slept:  # noqa: ASYNC110 -- the replay's task reaches its pause on this loop
            await asyncio.sleep(0)
    await first.stop()
    saved = await first.job(job.replay_id)
    assert saved is not None
    assert (saved.state, saved.scanned, saved.deliveries) == (ReplayState.RUNNING, 10, 10)
    # As if the next page had been put just before a crash, its cursor not yet saved:
    await router.queue.put(
        [QueuedEvent(replay_event_id(job.replay_id, f"e{i}"), b"{}", 5, ("crm",), T0 + 3600) for i in range(10, 20)]
    )
    time.gate = None
    second = replayer(router, time)
    [resumed] = await second.resume()
    assert resumed.replay_id == job.replay_id
    await second.wait(job.replay_id)
    done = await second.job(job.replay_id)
    assert done is not None
    assert (done.state, done.scanned, done.replayed, done.deliveries) == (ReplayState.DONE, 30, 30, 20)
    assert (await router.queue.stats()).pending == 30  # one delivery per event, none twice
    assert await second.resume() == []  # a finished job is not taken again


async def test_a_job_whose_runner_went_quiet_is_taken_over_by_the_watch(router: EventRouter) -> None:
    """A running job of another runner, without a heartbeat for longer than stale_s, is taken over by the
    periodic watch and finished; a fresh one is left alone."""
    await archive_events(router, 5)
    time = FakeTime()
    archive = archive_for(router.queue)
    quiet = ReplayJob(
        "rpl_quiet", T0, T0 + 100, None, None, 100.0, ReplayState.RUNNING, T0, runner="gone", heartbeat_at=T0
    )
    fresh = replace(quiet, replay_id="rpl_fresh", heartbeat_at=time.now)
    for job in (quiet, fresh):
        await archive.save_replay(job)
    runner = replayer(router, time, stale_s=60)
    runner.watch(interval_s=0.01)
    async with asyncio.timeout(10):
        while (job := await runner.job("rpl_quiet")) is None or job.state is not ReplayState.DONE:  # noqa: ASYNC110 -- the watch runs on this loop
            await asyncio.sleep(0.01)
    assert job.runner == "here"
    untouched = await runner.job("rpl_fresh")
    assert untouched is not None
    assert (untouched.runner, untouched.state, untouched.scanned) == ("gone", ReplayState.RUNNING, 0)
    await runner.stop()


async def test_a_replay_can_be_cancelled_and_a_broken_one_is_failed(router: EventRouter) -> None:
    """cancel() stops a running job for good; an unexpected error ends a job as failed, with the error."""
    await archive_events(router, 30)
    time = FakeTime()
    time.gate = asyncio.Event()
    runner = replayer(router, time)
    job = await runner.start(ReplayRequest(since=T0, until=T0 + 100, rate_per_s=10))
    cancelled = await runner.cancel(job.replay_id)
    assert cancelled is not None
    assert cancelled.state is ReplayState.CANCELLED
    assert cancelled.finished_at == time.now
    assert await runner.cancel("rpl_unknown") is None
    time.gate = None

    def broken(_event: Any) -> list[IntegrationTarget]:
        raise RuntimeError("matcher broke")

    router.match = broken  # type: ignore[method-assign]
    job = await runner.start(ReplayRequest(since=T0, until=T0 + 100))
    await runner.wait(job.replay_id)
    failed = await runner.job(job.replay_id)
    assert failed is not None
    assert (failed.state, failed.error) == (ReplayState.FAILED, "RuntimeError: matcher broke")


def test_a_bad_request_names_every_field() -> None:
    """until before since, a rate out of range, an unknown target and a bad pattern, all in one error."""
    with pytest.raises(InputError) as caught:
        check_request(
            ReplayRequest(since=10, until=5, target="nope", pattern='{"a": 1}', rate_per_s=0), targets=["crm"]
        )
    fields = {e.field: e.message for e in caught.value.errors}
    assert set(fields) == {"until", "rate", "target", "pattern"}
    assert "configured: crm" in fields["target"]
    assert check_request(ReplayRequest(since=5, until=10, pattern='{"a": ["x"]}'), targets=[]) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", 1000.0),
        ("-90s", 910.0),
        ("-2m", 880.0),
        ("- 1.5h", 1000.0 - 5400),
        ("-1d", 1000.0 - 86_400),
        ("-1w", 1000.0 - 604_800),
        ("1970-01-01T00:10:00Z", 600.0),
        ("1970-01-01T00:10:00", 600.0),  # no zone: UTC
        ("1970-01-01T01:10:00+01:00", 600.0),
    ],
)
def test_moments_read_iso_and_relative_forms(text: str, expected: float) -> None:
    """--since and --until: ISO-8601, now, or a time before now."""
    assert parse_moment(text, now=1000.0) == pytest.approx(expected)


def test_a_bad_moment_says_which_forms_are_understood() -> None:
    """Anything else is refused with the forms to use."""
    with pytest.raises(ValueError, match="-2h"):
        parse_moment("yesterday", now=0)
    assert iso(600.0) == "1970-01-01T00:10:00Z"
    assert iso(600.25) == "1970-01-01T00:10:00.250Z"


def test_replay_ids_are_told_apart_by_their_prefix() -> None:
    """A replay's event id names its replay and the original; other ids (even similar ones) are not replays."""
    assert replay_of(replay_event_id("rpl_0123456789abcdef", "e/1")) == ("rpl_0123456789abcdef", "e/1")
    for plain in ("e1", "rpl_short/e1", "rpl_0123456789abcdef", "rpl_0123456789abcdef/", "rpl_0123456789abcdefX1"):
        assert replay_of(plain) is None


def delivery(event_id: str) -> Delivery:
    return Delivery("1", "t", "d", event_id, "crm", 5, b"{}", 0, T0, T0 + 30)


def test_replay_deliveries_carry_the_replay_header_after_any_other_hook() -> None:
    """cxeb-replay-id on a replay's delivery only; tracing's headers are kept."""
    replayed = delivery(replay_event_id("rpl_0123456789abcdef", "e1"))
    assert replay_headers(target("crm"), replayed) == {REPLAY_HEADER: "rpl_0123456789abcdef"}
    assert replay_headers(target("crm"), delivery("e1")) == {}
    assert with_replay_headers(None) is replay_headers
    both = with_replay_headers(lambda _t, _d: {"traceparent": "00-x"})
    assert both(target("crm"), replayed) == {"traceparent": "00-x", REPLAY_HEADER: "rpl_0123456789abcdef"}
    assert both(target("crm"), delivery("e1")) == {"traceparent": "00-x"}


async def test_an_attempt_is_committed_with_the_ack_that_follows_it(router: EventRouter, tmp_path: Path) -> None:
    """On SQLite the recorder's row joins the ack's group commit: once the ack returns, another connection
    sees both, without a flush. Other bus events are ignored."""
    archive = archive_for(router.queue)
    recorder = AttemptRecorder(archive)
    await router.queue.put([QueuedEvent("e1", b"{}", 5, ("crm",), T0)])
    [leased] = await router.queue.lease({"crm": 1}, limit=1, lease_s=30)
    recorder(EventAccepted(event_id="e1", targets=("crm",), priority=5, at=T0))
    recorder(
        DeliveryAttempted(
            event_id="e1",
            delivery_id=leased.delivery_id,
            target="crm",
            attempt=1,
            outcome="error",
            status_code=None,
            latency_s=0.25,
            error="connect timeout to host",
            at=T0 + 1,
            delivery_key=leased.key,
        )
    )
    await router.queue.ack(leased, status=200)
    with sqlite3.connect(tmp_path / "queue.db") as other:
        state = other.execute("SELECT state FROM deliveries").fetchone()[0]
        key, line = other.execute("SELECT delivery_seq, line FROM attempts").fetchone()
    assert state == 2
    assert str(key) == leased.key
    assert json.loads(line) == [1, T0 + 1, "error", None, 0.25, "timeout", "connect timeout to host"]


async def test_the_keeper_prunes_at_start_and_logs_what_it_removed(
    router: EventRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The archive keeper prunes once when started, then every interval, and says how much it removed."""
    archive: EventArchive = archive_for(router.queue)
    await archive_events(router, 3)  # accepted at T0.., an hour before the queue's clock
    keeper = ArchiveKeeper(archive, keep_s=60, interval_s=3600)
    caplog.set_level(logging.INFO, logger="cxone_eventbridge.router.archive")
    keeper.start()
    async with asyncio.timeout(10):
        while await archive.count_archived(since=0, until=T0 + 10_000):  # noqa: ASYNC110 -- the keeper's first round
            await asyncio.sleep(0.01)
    await keeper.stop()
    assert "archive: pruned 3 rows" in caplog.text
    assert await keeper.prune_once() == 0
