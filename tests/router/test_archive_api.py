"""The history and replay routes (router/archive_api.py) on a real router service: answers, refusals, fields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.observe.metrics import RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
from cxone_eventbridge.sandbox.receiver import RunningReceiver
from cxone_eventbridge.ssrf import EgressPolicy

KEY = "archive-api-key-0123456789"

Call = Callable[..., Awaitable[tuple[int, Any]]]


class Delivered:
    """Counts deliveries that succeeded (a test waits on it rather than sleeping)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: ObservedEvent) -> None:
        if isinstance(event, DeliverySucceeded):
            self.count += 1


@pytest.fixture
async def service(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Call, Delivered]]:
    """A router service (archive on, unless parametrized with 0 days) with one target, ``crm``."""
    archive_days = float(getattr(request, "param", 7.0))  # parametrize indirectly with 0 for no archive
    receiver = await https_receiver()
    bus, metrics, delivered = ObserverBus(), RouterMetrics(), Delivered()
    bus.subscribe(metrics.observe)
    bus.subscribe(delivered)
    config = RouterConfig(
        queue_url=sqlite_url(tmp_path / "queue.db"),
        owner="test",
        dispatcher=DispatcherOptions(retry_base_s=0.005, retry_cap_s=0.02, poll_interval_s=0.02),
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=ssl_context_for(str(receiver.ca_path)),
        archive_days=archive_days,
    )
    crm = IntegrationTarget(
        id="tgt_crm", name="crm", endpoint=f"{receiver.url}/hooks/crm", retry_policy=RetryPolicy(max_retries=1)
    )
    router = build_router(config, targets=[crm], bus=bus)
    await router.start()
    api = RouterAPI(
        router,
        ServiceConfig(host="127.0.0.1", port=0, ingest_key=SecretStr(KEY)),
        bus=bus,
        metrics=metrics,
        status=StatusTracker(),
    )
    await api.start()
    session = aiohttp.ClientSession()

    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with session.request(method, api.url + path, json=body, headers=headers) as response:
            if response.content_type != "application/json":
                return response.status, await response.text()
            return response.status, await response.json(content_type=None)

    yield call, delivered
    await session.close()
    await api.stop()
    await router.stop(deadline_s=1.0)
    # The delivery client's connections close from its own thread: wait until the receiver (on this loop)
    # has seen them close, or its transports outlive the loop and warn in a later test.
    async with asyncio.timeout(10):
        while receiver.open_connections:  # noqa: ASYNC110 -- no event fires when a peer closes; poll
            await asyncio.sleep(0.01)


async def wait_delivered(delivered: Delivered, count: int) -> None:
    async with asyncio.timeout(15):
        while delivered.count < count:  # noqa: ASYNC110 -- the counter is bumped by the router's bus
            await asyncio.sleep(0.01)


async def test_history_of_an_event_lists_its_delivery_and_attempt(service: tuple[Call, Delivered]) -> None:
    """GET /v1/events/{id}: the event as JSON, its delivery and its attempt, times in ISO-8601."""
    call, delivered = service
    status, _ = await call("POST", "/v1/events", {"id": "e1", "type": "call"})
    assert status == 202
    await wait_delivered(delivered, 1)
    status, history = await call("GET", "/v1/events/e1")
    assert status == 200
    assert (history["eventId"], history["event"], history["attemptsRecorded"]) == (
        "e1",
        {"id": "e1", "type": "call"},
        True,
    )
    assert history["acceptedAt"].endswith("Z")
    [crm] = history["deliveries"]
    assert (crm["target"], crm["state"], crm["replayId"]) == ("crm", "delivered", None)
    [attempt] = crm["history"]
    assert (attempt["attempt"], attempt["outcome"], attempt["status"], attempt["category"]) == (1, "success", 200, None)
    status, missing = await call("GET", "/v1/events/nope")
    assert (status, missing["error"]) == (404, "event_not_found")


@pytest.mark.parametrize("service", [0], indirect=True)
async def test_without_the_archive_history_has_no_attempts_and_replays_are_refused(
    service: tuple[Call, Delivered],
) -> None:
    """Without --archive-days the event and its delivery still show (no attempts); a replay is 409."""
    call, delivered = service
    await call("POST", "/v1/events", {"id": "e1"})
    await wait_delivered(delivered, 1)
    status, history = await call("GET", "/v1/events/e1")
    assert status == 200
    assert history["attemptsRecorded"] is False
    assert [(d["state"], d["attempts"], d["history"]) for d in history["deliveries"]] == [("delivered", 1, [])]
    status, refused = await call("POST", "/v1/replays", {"since": "-1h"})
    assert (status, refused["error"]) == (409, "archive_disabled")
    assert "--archive-days" in refused["message"]
    status, nope = await call("GET", "/v1/events/" + "x" * 1025)
    assert (status, nope["error"]) == (400, "invalid_event_id")


async def test_a_replay_is_started_followed_listed_and_cancelled(service: tuple[Call, Delivered]) -> None:
    """POST /v1/replays answers 202 with the job; GET follows it to done; the list has it; cancel of a
    finished job leaves it done; unknown ids are 404."""
    call, delivered = service
    await call("POST", "/v1/events", [{"id": f"e{i}"} for i in range(3)])
    await wait_delivered(delivered, 3)
    body = {"since": "-1h", "target": "tgt_crm", "pattern": {"id": ["e1", "e2"]}, "rate": 1000}
    status, job = await call("POST", "/v1/replays", body)  # the target by its id
    assert status == 202
    assert job["target"] == "crm"
    assert (job["state"], job["total"], job["pattern"], job["until"].endswith("Z")) == (
        "running",
        3,
        {"id": ["e1", "e2"]},
        True,
    )
    await wait_delivered(delivered, 5)
    status, done = await call("GET", f"/v1/replays/{job['replayId']}")
    assert status == 200
    assert (done["state"], done["scanned"], done["replayed"], done["deliveries"]) == ("done", 3, 2, 2)
    status, listed = await call("GET", "/v1/replays")
    assert [j["replayId"] for j in listed["items"]] == [job["replayId"]]
    status, cancelled = await call("POST", f"/v1/replays/{job['replayId']}/cancel")
    assert (status, cancelled["state"]) == (200, "done")
    for method, path in (("GET", "/v1/replays/rpl_nope"), ("POST", "/v1/replays/rpl_nope/cancel")):
        status, body = await call(method, path)
        assert (status, body["error"]) == (404, "replay_not_found")
    status, history = await call("GET", "/v1/events/e2")
    assert sorted(d["replayId"] is not None for d in history["deliveries"]) == [False, True]
    assert await replay_series(call) == {("crm", "delivered"): 2, ("crm", "dead_lettered"): 0}


async def replay_series(call: Call) -> dict[tuple[str, str], float]:
    """The replay metric's samples, by (target, outcome)."""
    status, text = await call("GET", "/metrics")
    assert status == 200
    return {
        (s.labels["target"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cxeb_replay_deliveries_total"
    }


async def test_every_target_has_the_replay_series_from_the_first_scrape(service: tuple[Call, Delivered]) -> None:
    """Before any replay, the configured target's replay series are there, at zero."""
    call, _ = service
    assert await replay_series(call) == {("crm", "delivered"): 0, ("crm", "dead_lettered"): 0}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"since"}),
        ({"since": "yesterday", "until": 5}, {"since", "until"}),
        ({"since": "-1h", "target": 3, "pattern": [1], "rate": "fast"}, {"target", "pattern", "rate"}),
        ({"since": "-1h", "target": "nope", "pattern": '{"a": 1}', "rate": 0}, {"target", "pattern", "rate"}),
        ({"since": "-1h", "until": "-2h"}, {"until"}),
    ],
)
async def test_a_bad_replay_request_names_its_fields(
    service: tuple[Call, Delivered], body: dict[str, Any], fields: set[str]
) -> None:
    """400 invalid_replay with one error per bad field, before anything is replayed."""
    call, _ = service
    status, refused = await call("POST", "/v1/replays", body)
    assert (status, refused["error"]) == (400, "invalid_replay")
    assert {e["field"] for e in refused["errors"]} == fields


async def test_a_body_that_is_not_an_object_is_refused(service: tuple[Call, Delivered]) -> None:
    """Not JSON, or not an object: 400."""
    call, _ = service
    assert (await call("POST", "/v1/replays", [1]))[0] == 400
