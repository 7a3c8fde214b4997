"""RouterTracing's bookkeeping: unknown events start their own trace, maps stay bounded, spans always end."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import DeliveryAttempted, EventAccepted
from cxone_eventbridge.observe.tracing import RouterTracing
from cxone_eventbridge.router.queue import Delivery

T0 = 1_700_000_000.0
TARGET = IntegrationTarget(
    name="crm", endpoint="https://example.com/hook", signing_secret=SecretStr("whsec_" + "A" * 32)
)


def delivery(event_id: str, delivery_id: str = "d1", attempts: int = 0) -> Delivery:
    return Delivery("1", "lease", delivery_id, event_id, "crm", 5, b"{}", attempts, T0, T0 + 30)


@pytest.fixture
def traced() -> tuple[RouterTracing, InMemorySpanExporter, TracerProvider]:
    """RouterTracing on its own SDK provider with an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return RouterTracing(tracer_provider=provider, max_events=2), exporter, provider


def test_an_event_the_router_did_not_see_accepted_starts_a_trace_of_its_own(traced: Any) -> None:
    """After a restart there is no ingest span to continue: the attempt is a root span with the event id."""
    tracing, exporter, _ = traced
    headers = tracing.webhook_headers(TARGET, delivery("unknown"))
    assert headers["traceparent"].startswith("00-")
    tracing.observe(DeliveryAttempted("unknown", "d1", "crm", 1, "success", 200, 0.01, None, T0))
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["cxeb.event.id"] == "unknown"


def test_the_event_map_is_bounded_and_only_spans_of_a_request_are_remembered(traced: Any) -> None:
    """EventAccepted outside a span is ignored; past max_events the oldest event is forgotten."""
    tracing, exporter, provider = traced
    tracing.observe(EventAccepted("outside", ("crm",), 5, T0))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("ingest") as ingest:
        for event_id in ("e1", "e2", "e3"):
            tracing.observe(EventAccepted(event_id, ("crm",), 5, T0))
    for n, event_id in enumerate(("outside", "e1", "e3")):
        tracing.webhook_headers(TARGET, delivery(event_id, f"d{n}"))
    tracing.close()
    parents = {
        span.attributes["cxeb.event.id"]: span.parent.span_id if span.parent else None
        for span in exporter.get_finished_spans()
        if span.name == "cxeb deliver" and span.attributes
    }
    assert parents == {"outside": None, "e1": None, "e3": ingest.get_span_context().span_id}


def test_a_repeated_attempt_ends_the_stale_span_and_failures_are_marked(traced: Any) -> None:
    """An attempt that never reported back is ended when its delivery is tried again; a 503 is an error."""
    tracing, exporter, _ = traced
    tracing.webhook_headers(TARGET, delivery("e1"))
    tracing.webhook_headers(TARGET, delivery("e1", attempts=1))
    tracing.observe(DeliveryAttempted("e1", "d1", "crm", 2, "retry", 503, 0.01, None, T0))
    tracing.observe(DeliveryAttempted("e1", "d1", "crm", 2, "retry", 503, 0.01, None, T0))  # already ended
    first, second = exporter.get_finished_spans()
    assert (first.attributes or {})["cxeb.attempt"] == 1
    assert (second.attributes or {})["http.response.status_code"] == 503
    assert not second.status.is_ok


def test_tracing_never_stops_a_delivery(traced: Any) -> None:
    """A failure inside the header hook is logged and the attempt goes out without trace headers."""
    tracing, _, _ = traced
    broken = delivery("e1", attempts="not a number")  # type: ignore[arg-type]
    assert tracing.webhook_headers(TARGET, broken) == {}


def test_max_events_must_be_positive() -> None:
    """A map that can hold nothing is refused."""
    with pytest.raises(ValueError, match="max_events"):
        RouterTracing(max_events=0)
