"""OpenTelemetry: an ingest request's trace continues through every delivery attempt to the receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from cxone_eventbridge.models import RetryPolicy
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.observe.metrics import RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.observe.tracing import RouterTracing
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
from cxone_eventbridge.sandbox.receiver import RunningReceiver

from .conftest import INGEST_KEY, LOOPBACK, Outcomes, fast_options, target_for

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Traced:
    """A router with tracing on, its spans and its receiver."""

    def __init__(self, url: str, exporter: InMemorySpanExporter, receiver: RunningReceiver, outcomes: Outcomes):
        self.url = url
        self.exporter = exporter
        self.receiver = receiver
        self.outcomes = outcomes

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


@pytest.fixture
async def traced(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Traced]]]:
    """Start a router whose spans go to an in-memory exporter (the SDK's own)."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def factory(*, fail_rate: float = 0.0) -> Traced:
        receiver = await https_receiver(fail_rate=fail_rate, seed=7)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = RouterTracing(tracer_provider=provider)
        bus, metrics, status, outcomes = ObserverBus(), RouterMetrics(), StatusTracker(), Outcomes()
        for observer in (metrics.observe, status.observe, tracing.observe, outcomes):
            bus.subscribe(observer)
        config = RouterConfig(
            queue_url=sqlite_url(tmp_path / "queue.db"),
            dispatcher=fast_options(),
            egress=LOOPBACK,
            ssl_context=ssl_context_for(str(receiver.ca_path)),
        )
        target = target_for("crm", receiver.url, retry_policy=RetryPolicy(max_retries=10))
        router = build_router(config, targets=[target], bus=bus, header_hook=tracing.webhook_headers)
        await router.start()
        service = RouterAPI(
            router,
            ServiceConfig(host="127.0.0.1", port=0, ingest_key=SecretStr(INGEST_KEY)),
            bus=bus,
            metrics=metrics,
            status=status,
        )
        tracing.instrument(service.app)
        await service.start()

        async def stop() -> None:
            await service.stop()
            await router.stop(deadline_s=1.0)
            tracing.close()

        cleanups.append(stop)
        return Traced(service.url, exporter, receiver, outcomes)

    yield factory
    for cleanup in cleanups:
        await cleanup()


async def post(url: str, body: Any, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {INGEST_KEY}", **headers}
        async with session.post(f"{url}/v1/events", json=body, headers=auth) as response:
            return response.status


async def test_a_delivery_carries_the_ingest_requests_trace_to_the_receiver(traced: Any) -> None:
    """traceparent in → ingest span (child of it) → attempt span (child of that) → traceparent on the webhook."""
    router = await traced()
    status = await post(router.url, {"id": "e1"}, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert status == 202
    await router.outcomes.wait(delivered=1)
    [ingest] = router.spans("cxeb ingest")
    assert ingest.kind is SpanKind.SERVER
    assert format(ingest.context.trace_id, "032x") == TRACE_ID
    assert ingest.parent is not None
    assert format(ingest.parent.span_id, "016x") == PARENT_ID
    assert ingest.attributes is not None
    assert ingest.attributes["http.response.status_code"] == 202
    assert [event.attributes["cxeb.event.id"] for event in ingest.events if event.attributes] == ["e1"]
    [attempt] = router.spans("cxeb deliver")
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.context.trace_id == ingest.context.trace_id
    assert attempt.parent is not None
    assert attempt.parent.span_id == ingest.context.span_id
    assert attempt.attributes is not None
    assert (attempt.attributes["cxeb.event.id"], attempt.attributes["cxeb.target"]) == ("e1", "crm")
    assert attempt.attributes["http.response.status_code"] == 200
    [record] = router.receiver.records()
    headers = {name.lower(): value for name, value in record["headers"].items()}
    assert headers["traceparent"] == f"00-{TRACE_ID}-{attempt.context.span_id:016x}-01"


async def test_every_retry_is_its_own_span_in_the_same_trace_and_failures_are_errors(traced: Any) -> None:
    """A retried delivery's attempts are sibling spans under one ingest span; failed ones have status ERROR."""
    router = await traced(fail_rate=0.5)
    status = await post(router.url, [{"id": f"e{n}"} for n in range(6)], {})
    assert status == 202
    await router.outcomes.wait(delivered=6)
    [ingest] = router.spans("cxeb ingest")
    attempts = router.spans("cxeb deliver")
    assert len(attempts) > 6  # at this fail rate and seed, some were retried
    assert {span.context.trace_id for span in attempts} == {ingest.context.trace_id}
    assert {span.parent.span_id for span in attempts if span.parent} == {ingest.context.span_id}
    failed = [span for span in attempts if span.attributes and span.attributes["cxeb.outcome"] != "success"]
    assert failed
    assert {span.status.status_code for span in failed} == {StatusCode.ERROR}
    sent = {
        {k.lower(): v for k, v in record["headers"].items()}["traceparent"].rsplit("-", 1)[0]
        for record in router.receiver.records()
    }
    assert sent == {f"00-{ingest.context.trace_id:032x}-{span.context.span_id:016x}" for span in attempts}
