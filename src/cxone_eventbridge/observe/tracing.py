"""OpenTelemetry traces of the router (the optional extra ``cxone-eventbridge[otel]``).

A span per ingest request (``cxeb ingest``, kind SERVER) and one per delivery attempt (``cxeb deliver``,
kind CLIENT), linked by event: an attempt's span is a child of the span of the ingest request that
accepted its event, so the producer's trace, the router's work and the receiver's handling are one
trace. The W3C ``traceparent`` (and ``tracestate``) of the ingest request is taken as the ingest span's
parent, and every webhook carries a ``traceparent`` naming its attempt's span.

How the pieces attach, without tracing code in the delivery path itself:

- ``instrument(app)`` puts a middleware in front of the router's HTTP app; the ingest span is current
  while the request is handled, and ``observe`` (an ``ObserverBus`` observer) sees ``EventAccepted`` in
  that same task and remembers which span accepted which event;
- ``webhook_headers`` is the delivery client's header hook: it starts the attempt's span and returns its
  ``traceparent``; ``observe`` ends the span when ``DeliveryAttempted`` arrives.

The event-to-span map lives in memory and is bounded (``max_events``): a delivery attempted after a
restart, or after its event was pushed out of the map, starts a trace of its own (still carrying the
event id as an attribute). This module imports OpenTelemetry, so import it only when tracing is wanted
(``cxeb router serve --otel``). Which tracer provider and exporter to use is the application's choice (the
global one by default, as ``opentelemetry-instrument`` configures it from ``OTEL_*`` variables).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cxone_eventbridge import __version__
from cxone_eventbridge.observe.events import DeliveryAttempted, EventAccepted, ObservedEvent

if TYPE_CHECKING:
    from cxone_eventbridge.models import IntegrationTarget
    from cxone_eventbridge.router.queue import Delivery

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 100_000
MAX_OPEN_ATTEMPTS = 10_000
INGEST_PATH = "/v1/events"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouterTracing:
    """Spans for ingest requests and delivery attempts; see the module docstring for how to attach it."""

    def __init__(self, *, tracer_provider: TracerProvider | None = None, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._tracer = trace.get_tracer("cxone_eventbridge.router", __version__, tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()
        self._max_events = max_events
        self._events: OrderedDict[str, SpanContext] = OrderedDict()  # event id -> its ingest span
        self._attempts: OrderedDict[str, Span] = OrderedDict()  # delivery id -> its open attempt span

    # -- ingest -------------------------------------------------------------------------------------

    def instrument(self, app: web.Application) -> None:
        """Trace ingest requests of ``app`` (before it starts); outermost, so it sees the final answer."""
        app.middlewares.insert(0, self._middleware)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != INGEST_PATH:
            return await handler(request)
        parent = self._propagator.extract(dict(request.headers))
        with self._tracer.start_as_current_span(
            "cxeb ingest",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": INGEST_PATH},
        ) as span:
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    # -- delivery -----------------------------------------------------------------------------------

    def webhook_headers(self, target: IntegrationTarget, delivery: Delivery) -> Mapping[str, str]:
        """Start the attempt's span (a child of its event's ingest span); the headers that carry it."""
        try:
            return self._start_attempt(target, delivery)
        except Exception:  # the observer boundary: tracing must never stop a delivery
            log.exception("could not start the span of delivery %s", delivery.delivery_id)
            return {}

    def _start_attempt(self, target: IntegrationTarget, delivery: Delivery) -> dict[str, str]:
        parent_span = self._events.get(delivery.event_id)
        parent = trace.set_span_in_context(NonRecordingSpan(parent_span)) if parent_span else Context()
        span = self._tracer.start_span(
            "cxeb deliver",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "cxeb.event.id": delivery.event_id,
                "cxeb.delivery.id": delivery.delivery_id,
                "cxeb.target": target.name,
                "cxeb.attempt": delivery.attempts + 1,
                "http.request.method": "POST",
            },
        )
        stale = self._attempts.pop(delivery.delivery_id, None)
        if stale is not None:  # an attempt that never reported back (its lease ran out)
            stale.end()
        self._attempts[delivery.delivery_id] = span
        while len(self._attempts) > MAX_OPEN_ATTEMPTS:
            _, oldest = self._attempts.popitem(last=False)
            oldest.end()
        headers: dict[str, str] = {}
        self._propagator.inject(headers, context=trace.set_span_in_context(span))
        return headers

    # -- the observer -------------------------------------------------------------------------------

    def observe(self, event: ObservedEvent) -> None:
        """Remember which ingest span accepted an event; end an attempt's span with its outcome."""
        if isinstance(event, EventAccepted):
            span = trace.get_current_span()
            context = span.get_span_context()
            if context.is_valid:
                span.add_event("event accepted", {"cxeb.event.id": event.event_id, "cxeb.targets": len(event.targets)})
                self._events[event.event_id] = context
                self._events.move_to_end(event.event_id)
                while len(self._events) > self._max_events:
                    self._events.popitem(last=False)
        elif isinstance(event, DeliveryAttempted):
            attempt = self._attempts.pop(event.delivery_id, None)
            if attempt is None:
                return
            attempt.set_attribute("cxeb.outcome", event.outcome)
            if event.status_code is not None:
                attempt.set_attribute("http.response.status_code", event.status_code)
            if event.outcome != "success":
                attempt.set_status(Status(StatusCode.ERROR, event.error or f"status {event.status_code}"))
            attempt.end()

    def close(self) -> None:
        """End the spans of attempts that never reported back (at shutdown)."""
        while self._attempts:
            _, span = self._attempts.popitem()
            span.end()
