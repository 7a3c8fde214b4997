"""Deliveries as they happen: ``GET /v1/deliveries/live``, what ``cxeb router tail`` reads.

An observer of the router's bus turns each ``DeliveryAttempted`` into one JSON line and hands it to
every connected reader at once (no polling, so a reader sees an attempt within milliseconds of it).
The answer is NDJSON over a chunked response: a first ``{"type": "hello"}`` line once the stream is
open, then one ``{"type": "attempt", ...}`` line per attempt, one ``{"type": "dead", ...}`` line when a
delivery is dead-lettered (its last attempt's ``outcome`` says only how that attempt went: ``retry`` for a
503, even when no retry is left), and an empty line every
``KEEPALIVE_S`` seconds so proxies keep the connection. ``?target=NAME`` keeps one target's attempts,
``?failed=true`` only the failed ones (and the dead letters); the target is named by its name or
control-plane id (an unknown one is a 404 naming the targets the router knows).

A slow reader never slows deliveries: each reader has a bounded buffer, and what does not fit is dropped
and counted in a ``{"type": "dropped", "count": N}`` line. When the router stops, every stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError, UnknownTargetError
from cxone_eventbridge.observe.events import DeliveryAttempted, DeliveryDeadLettered, ObservedEvent, ObserverBus
from cxone_eventbridge.wire import iso_time

KEEPALIVE_S = 15.0
BUFFER = 1000
PATH = "/v1/deliveries/live"
_END = object()


_Followed = DeliveryAttempted | DeliveryDeadLettered


def _which_delivery(kind: str, event: _Followed) -> dict[str, Any]:
    """The fields every line of the feed starts with: what kind of line, when, and which delivery."""
    return {
        "type": kind,
        "at": iso_time(event.at),
        "target": event.target,
        "eventId": event.event_id,
        "deliveryId": event.delivery_id,
    }


def attempt_to_wire(event: DeliveryAttempted) -> dict[str, Any]:
    """One attempt as a JSON object (camelCase, time ISO-8601)."""
    return _which_delivery("attempt", event) | {
        "attempt": event.attempt,
        "outcome": event.outcome,
        "status": event.status_code,
        "latencyMs": round(event.latency_s * 1000, 3),
        "error": event.error,
    }


def dead_letter_to_wire(event: DeliveryDeadLettered) -> dict[str, Any]:
    """A delivery given up on, as a JSON object: after how many attempts, why, and the last answer."""
    return _which_delivery("dead", event) | {
        "attempts": event.attempts,
        "reason": event.reason,
        "status": event.last_status,
        "error": event.last_error,
    }


def _to_wire(event: _Followed) -> dict[str, Any]:
    return attempt_to_wire(event) if isinstance(event, DeliveryAttempted) else dead_letter_to_wire(event)


@dataclass(eq=False)
class _Reader:
    target: str | None
    failed_only: bool
    queue: asyncio.Queue[object] = field(default_factory=lambda: asyncio.Queue(BUFFER))
    dropped: int = 0

    def wants(self, event: _Followed) -> bool:
        if self.target is not None and event.target != self.target:
            return False
        succeeded = isinstance(event, DeliveryAttempted) and event.outcome == "success"
        return not (self.failed_only and succeeded)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class DeliveryFeed:
    """Fans attempts out to live readers; ``mount`` adds the route and ends the streams on shutdown."""

    def __init__(
        self, bus: ObserverBus, *, keepalive_s: float = KEEPALIVE_S, resolve: Callable[[str], str] | None = None
    ) -> None:
        """``resolve`` turns ``?target=`` (name or id) into the target's name, or raises UnknownTargetError."""
        self._resolve = resolve
        self._readers: set[_Reader] = set()
        self._keepalive_s = keepalive_s
        bus.subscribe(self.observe)

    def mount(self, app: web.Application) -> None:
        app.router.add_get(PATH, self._stream)
        app.on_shutdown.append(self._close)

    @property
    def readers(self) -> int:
        return len(self._readers)

    def observe(self, event: ObservedEvent) -> None:
        """Offer an attempt or a dead letter to every reader that wants it, without ever waiting."""
        if not self._readers or not isinstance(event, DeliveryAttempted | DeliveryDeadLettered):
            return
        line: bytes | None = None
        for reader in self._readers:
            if not reader.wants(event):
                continue
            if line is None:
                line = json.dumps(_to_wire(event), separators=(",", ":")).encode() + b"\n"
            try:
                reader.queue.put_nowait(line)
            except asyncio.QueueFull:
                reader.dropped += 1

    async def _close(self, _app: web.Application) -> None:
        for reader in self._readers:
            if reader.queue.full():  # make room for the end marker: the stream is over anyway
                reader.queue.get_nowait()
            reader.queue.put_nowait(_END)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        target = request.query.get("target") or None
        if target is not None and self._resolve is not None:
            try:
                target = self._resolve(target)
            except UnknownTargetError as exc:
                raise IngestError(404, "not_found", exc.message, [("target", target)]) from None
        reader = _Reader(target=target, failed_only=_flag(request.query.get("failed")))
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        self._readers.add(reader)
        try:
            hello = {"type": "hello", "target": target, "failedOnly": reader.failed_only}
            await response.write(json.dumps(hello).encode() + b"\n")
            while True:
                try:
                    async with asyncio.timeout(self._keepalive_s):
                        item = await reader.queue.get()
                except TimeoutError:
                    await response.write(b"\n")
                    continue
                if item is _END:
                    break
                if reader.dropped:
                    dropped, reader.dropped = reader.dropped, 0
                    await response.write(json.dumps({"type": "dropped", "count": dropped}).encode() + b"\n")
                assert isinstance(item, bytes)
                await response.write(item)
        except (ConnectionResetError, ConnectionError):
            pass  # the reader went away
        finally:
            self._readers.discard(reader)
        return response
