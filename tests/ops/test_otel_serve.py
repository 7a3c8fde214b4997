"""`cxeb router serve --otel` as a real process: a webhook carries the ingest request's trace id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..waiting import until
from .conftest import RouterFactory

pytestmark = pytest.mark.e2e

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_router_serve_otel_sends_the_producers_trace_on_the_webhook(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """With no tracer provider configured, the producer's traceparent still reaches the receiver."""
    receiver = await https_receiver()
    router = await router_process(
        [{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}], receiver=receiver, args=("--otel",)
    )
    async with router.client() as client:
        accepted = await client.post("/v1/events", json={"id": "e1"}, headers={"traceparent": TRACEPARENT})
        assert accepted.status_code == 202, accepted.text
        await until(lambda: receiver.request_count >= 1)  # the receiver announces nothing
    [record] = receiver.records()
    headers = {name.lower(): value for name, value in record["headers"].items()}
    assert headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
