"""``router.api_client.RouterClient``: a real router on loopback, and a loopback server for the wire's odd answers.

Retries run on an injected ``sleep`` (it records the delays, nothing waits) and an injected ``now``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from cxone_eventbridge.exceptions import RouterRefusedError, RouterUnreachableError
from cxone_eventbridge.router.api_client import RetryNotice, RetrySchedule, RouterClient, encode_for_ingest

from ..ports import free_port
from .conftest import INGEST_KEY, StackFactory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sleeps:
    """An injected sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def odd_router() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a loopback server answering ``POST /v1/events`` and ``GET /v1/status`` with a test's handler."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/v1/events", handler)
        app.router.add_get("/v1/status", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_every_operation_against_a_real_router(router_stack: StackFactory) -> None:
    """ingest, status, dead letters, replay, purge, enable and metrics answer as the router's HTTP API does."""
    stack = await router_stack(receiver_status=400)
    async with RouterClient(stack.url, ingest_key=SecretStr(INGEST_KEY)) as router:
        ids = await router.ingest([{"id": "e1"}, {"n": 2}], priority=3)
        assert ids[0] == "e1"
        assert len(ids) == 2
        await stack.outcomes.wait(dead=2)
        status = await router.status()
        assert status["queue"]["dead"] == 2
        letters = await router.dead_letters(target="crm", limit=10)
        assert {item["priority"] for item in letters["items"]} == {3}
        assert await router.replay(delivery_ids=[letters["items"][0]["deliveryId"]]) == 1
        await stack.outcomes.wait(dead=3)
        assert await router.purge(target="crm") == 2
        await router.enable("crm")
        assert "cxeb_events_accepted_total" in await router.metrics()


async def test_a_wrong_ingest_key_is_refused_without_retries(router_stack: StackFactory) -> None:
    """401 is not retried: RouterRefusedError with the status, and the key appears nowhere in the message."""
    stack = await router_stack()
    sleeps = Sleeps()
    async with RouterClient(stack.url, ingest_key=SecretStr("wrong-key-" * 3), sleep=sleeps) as router:
        with pytest.raises(RouterRefusedError) as caught:
            await router.status()
    assert caught.value.status == 401
    assert "wrong-key" not in str(caught.value)
    assert sleeps.delays == []


async def test_retry_after_is_honoured_and_notices_name_the_request(
    odd_router: Callable[[Handler], Awaitable[str]],
) -> None:
    """503 with Retry-After (seconds, then an HTTP date) waits what it says; each notice names the same request."""
    answers = [
        web.json_response({"error": "queue_full", "message": "full"}, status=503, headers={"Retry-After": "2"}),
        web.json_response(
            {"error": "queue_full", "message": "full"},
            status=503,
            headers={"Retry-After": "Mon, 30 Nov 2026 10:00:07 GMT"},
        ),
    ]
    bodies: list[list[dict[str, Any]]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        events = [json.loads(line) for line in (await request.read()).splitlines()]
        bodies.append(events)
        if answers:
            return answers.pop(0)
        return web.json_response({"accepted": len(events), "ids": [e["id"] for e in events]}, status=202)

    url = await odd_router(handler)
    sleeps, notices = Sleeps(), list[RetryNotice]()
    now = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
    async with RouterClient(url, sleep=sleeps, now=lambda: now, on_retry=notices.append) as router:
        ids = await router.ingest([{"n": 1}])
    assert sleeps.delays == [2.0, 7.0]
    assert [n.request for n in notices] == [f"POST {url}/v1/events"] * 2
    assert notices[0].reason == f"POST {url}/v1/events failed with HTTP 503: full"
    assert [n.next_attempt for n in notices] == [2, 3]
    # The id added on the first attempt is the one every retry carries: the router can drop a copy.
    assert len({events[0]["id"] for events in bodies}) == 1
    assert ids == [bodies[0][0]["id"]]


async def test_retries_end_with_the_error_the_notices_named(odd_router: Callable[[Handler], Awaitable[str]]) -> None:
    """After max_attempts the last answer is raised, in the words every retry notice used."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "internal", "message": "boom"}, status=500)

    url = await odd_router(handler)
    sleeps, notices = Sleeps(), list[RetryNotice]()
    schedule = RetrySchedule(max_attempts=3, base_delay_s=1.0, max_delay_s=10.0)
    async with RouterClient(url, retry=schedule, sleep=sleeps, rng=lambda: 0.0, on_retry=notices.append) as client:
        with pytest.raises(RouterRefusedError) as caught:
            await client.status()
    assert caught.value.status == 500
    assert caught.value.message == f"GET {url}/v1/status failed with HTTP 500: boom"
    assert {n.reason for n in notices} == {caught.value.message}
    assert sleeps.delays == [0.5, 1.0]  # exponential backoff, equal jitter at its lowest (rng 0)


async def test_field_errors_are_kept_and_not_retried(odd_router: Callable[[Handler], Awaitable[str]]) -> None:
    """422 with field errors raises at once with every field named."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        errors = [{"field": "line 2", "message": "is not a JSON object"}]
        return web.json_response({"error": "not_object", "message": "1 item(s)", "errors": errors}, status=422)

    url = await odd_router(handler)
    sleeps = Sleeps()
    async with RouterClient(url, sleep=sleeps) as router:
        with pytest.raises(RouterRefusedError) as caught:
            await router.ingest([{"a": 1}])
    assert caught.value.code == "not_object"
    assert [(e.field, e.message) for e in caught.value.errors] == [("line 2", "is not a JSON object")]
    assert "line 2: is not a JSON object" in str(caught.value)
    assert sleeps.delays == []


async def test_an_answer_that_is_not_a_json_object_is_an_error(odd_router: Callable[[Handler], Awaitable[str]]) -> None:
    """A 200 whose body is not a JSON object is refused by name, not a KeyError later."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>proxy</html>", content_type="text/html")

    url = await odd_router(handler)
    async with RouterClient(url) as router:
        with pytest.raises(RouterRefusedError, match="not a JSON object"):
            await router.status()


async def test_nothing_listening_is_unreachable_after_the_retries() -> None:
    """A refused connection is retried on the schedule, then RouterUnreachableError names the request and URL."""
    url = f"http://127.0.0.1:{free_port()}"
    sleeps = Sleeps()
    async with RouterClient(url, retry=RetrySchedule(max_attempts=2), sleep=sleeps) as router:
        with pytest.raises(RouterUnreachableError) as caught:
            await router.status()
    assert caught.value.url == url
    assert caught.value.message.startswith(f"GET {url}/v1/status got no answer")
    assert len(sleeps.delays) == 1


def test_encode_for_ingest_adds_an_id_only_when_missing() -> None:
    """An event keeps its own id; one without gets a fresh one; the encoding is compact JSON."""
    assert encode_for_ingest({"id": "x", "a": 1}) == b'{"id":"x","a":1}'
    first, second = (json.loads(encode_for_ingest({"a": 1}))["id"] for _ in range(2))
    assert first != second


async def test_the_ingest_key_is_not_in_the_repr() -> None:
    """repr names the URL only."""
    client = RouterClient("http://127.0.0.1:1/", ingest_key=SecretStr("k" * 20))
    await client.aclose()
    assert repr(client) == "RouterClient(url='http://127.0.0.1:1')"
    assert "kkkk" not in repr(client)
