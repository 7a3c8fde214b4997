"""GET /v1/deliveries/live: attempts fanned out to readers, filtered, bounded, kept alive, ended at shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cxone_eventbridge.observe.events import DeliveryAttempted, DeliverySucceeded, ObserverBus
from cxone_eventbridge.router.live import BUFFER, DeliveryFeed
from cxone_eventbridge.wire import iso_time

T0 = 1_700_000_000.0


def attempt(target: str = "crm", outcome: str = "success", status: int | None = 200, n: int = 1) -> DeliveryAttempted:
    return DeliveryAttempted(f"e{n}", f"d{n}", target, 1, outcome, status, 0.0123, None, T0)


@pytest.fixture
async def feed() -> AsyncIterator[tuple[ObserverBus, DeliveryFeed, TestClient[Any, Any]]]:
    """A feed mounted on its own app, served on loopback, with a client."""
    bus = ObserverBus()
    feed = DeliveryFeed(bus, keepalive_s=0.01)
    app = web.Application()
    feed.mount(app)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield bus, feed, client
    await client.close()


async def lines(response: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` non-empty JSON lines (empty keep-alive lines skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        line = await response.content.readline()
        assert line, "the stream ended"
        if line.strip():
            out.append(json.loads(line))
    return out


async def test_readers_get_attempts_filtered_by_target_and_failure(feed: Any) -> None:
    """Each reader sees what it asked for; other records on the bus are not attempts and are not sent."""
    bus, live, client = feed
    everything = await client.get("/v1/deliveries/live")
    failures = await client.get("/v1/deliveries/live", params={"target": "billing", "failed": "true"})
    assert everything.headers["Content-Type"] == "application/x-ndjson"
    assert (await lines(everything, 1))[0]["type"] == "hello"
    assert (await lines(failures, 1))[0] == {"type": "hello", "target": "billing", "failedOnly": True}
    assert live.readers == 2
    bus.publish(DeliverySucceeded("e1", "d1", "crm", 1, 0.1, T0))
    bus.publish(attempt("crm"))
    bus.publish(attempt("billing", "success", 200, 2))
    bus.publish(attempt("billing", "retry", 503, 3))
    got = await lines(everything, 3)
    assert [(g["target"], g["status"]) for g in got] == [("crm", 200), ("billing", 200), ("billing", 503)]
    assert got[0] == {
        "type": "attempt",
        "at": iso_time(T0),
        "target": "crm",
        "eventId": "e1",
        "deliveryId": "d1",
        "attempt": 1,
        "outcome": "success",
        "status": 200,
        "latencyMs": 12.3,
        "error": None,
    }
    [failure] = await lines(failures, 1)
    assert (failure["eventId"], failure["outcome"]) == ("e3", "retry")


async def test_a_reader_that_falls_behind_is_told_how_many_it_missed(feed: Any) -> None:
    """Past the buffer, attempts are dropped for that reader (never waited for) and counted in one line."""
    bus, _, client = feed
    response = await client.get("/v1/deliveries/live")
    await lines(response, 1)
    for n in range(BUFFER + 25):
        bus.publish(attempt(n=n))
    first = await lines(response, 2)
    assert first[0] == {"type": "dropped", "count": 25}
    assert first[1]["eventId"] == "e0"


async def test_shutdown_ends_every_stream(feed: Any) -> None:
    """The app's shutdown ends open streams, so a reader never holds the router's stop."""
    _, live, client = feed
    response = await client.get("/v1/deliveries/live")
    await lines(response, 1)
    await client.app.shutdown()
    assert (await response.content.read()).strip() == b""  # at most keep-alive lines, then the end
    assert live.readers == 0


async def test_shutdown_ends_even_a_stream_whose_reader_fell_behind(feed: Any) -> None:
    """A full buffer still takes the end marker."""
    bus, live, client = feed
    response = await client.get("/v1/deliveries/live")
    await lines(response, 1)
    for n in range(BUFFER + 5):
        bus.publish(attempt(n=n))
    await client.app.shutdown()
    rest = [json.loads(line) for line in (await response.content.read()).splitlines() if line.strip()]
    assert rest[0] == {"type": "dropped", "count": 5}
    assert len(rest) == BUFFER  # the dropped line, then all but the one that made room for the end
    assert live.readers == 0
