"""The event router: the routing table, the durable queue, the dispatcher and the observer bus, composed.

``await router.ingest(events, priority)`` validates the events (JSON objects, at most 256 KB each),
keeps each event's own ``id`` for deduplication or assigns one, matches them against every target, and
returns their ids only after the events and their deliveries are committed to the queue. From then on
nothing is lost: the dispatcher delivers each (event, target) at least once, or dead-letters it with
the reason.

A target that answers 410 Gone is disabled (remembered in the queue across restarts, and seen by every
router sharing the queue); its deliveries, and those of events accepted meanwhile, wait in the queue
until ``enable_target`` or until they expire. An operator's pause (``pause_target``) is the same record
with the reason ``paused``: the target's deliveries are held, spending no attempt, until ``resume_target``;
ingest still accepts events for it. Pause, resume and enable are published as ``TargetChanged`` records
(the audit log and the operations log write them).

Commands name a target by its name or by its control-plane id (``resolve_target``): the router knows the
ids of targets synced from the API and of targets-file entries that carry one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge import secret_refs
from cxone_eventbridge.exceptions import FieldError, InputError, InvalidEventError, QueueFullError, UnknownTargetError
from cxone_eventbridge.matching import RoutingTable
from cxone_eventbridge.models import IntegrationTarget, TargetStatus
from cxone_eventbridge.observe.events import (
    DeliveryAttempted,
    EventAccepted,
    IngestRejected,
    ObservedEvent,
    ObserverBus,
    TargetChanged,
)
from cxone_eventbridge.router.archive import ArchiveSetup
from cxone_eventbridge.router.circuit import CircuitState
from cxone_eventbridge.router.delivery import DeliveryClient, HeaderHook, create_transport
from cxone_eventbridge.router.dispatcher import Dispatcher, DispatcherOptions
from cxone_eventbridge.router.http_transport import HttpTransport
from cxone_eventbridge.router.queue import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    DeadLetter,
    DeliveryQueue,
    QueuedEvent,
    QueueStats,
)
from cxone_eventbridge.router.queue.records import TargetHold
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, system_resolver
from cxone_eventbridge.wire import MAX_EVENT_BYTES, encode_event, event_id_problem

log = logging.getLogger(__name__)

_KNOWN_SHOWN = 20  # targets named in an "unknown target" message

# ingest() lets other work on the event loop run whenever preparing events (encoding, matching) has
# held it this long: 10,000 events in one request must not hold the loop throughout. Only when other
# work runs depends on time, never what is accepted.
_STEP_S = 0.005


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What ``probe_target`` did: whether a circuit was open (or half-open) to probe, how many deliveries were
    pending to probe with, and the probe's attempt (None when none was pending, or when no attempt was seen
    by this router within the wait: another router sharing the queue may have leased it)."""

    probed: bool
    pending: int = 0
    attempt: DeliveryAttempted | None = None


def _new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def _check_target(target: IntegrationTarget) -> None:
    """Refuse a target that cannot be delivered to as given (a secret still an ``${env:...}`` reference)."""
    errors: list[FieldError] = []
    auth_value = target.authentication.secret
    if auth_value is not None and secret_refs.is_reference(auth_value.get_secret_value()):
        errors.append(FieldError(target.authentication.secret_path, "is an unresolved ${env:...} reference"))
    secret = target.signing_secret
    if secret is not None and secret_refs.is_reference(secret.get_secret_value()):
        errors.append(FieldError("signingSecret", "is an unresolved ${env:...} reference"))
    if errors:
        raise InputError(f"target {target.name!r} cannot be routed to; resolve its secrets first", errors)


class EventRouter:
    """Routes events to targets durably. Use as ``async with EventRouter(queue, ...) as router:``."""

    def __init__(
        self,
        queue: DeliveryQueue,
        *,
        targets: Iterable[IntegrationTarget] = (),
        bus: ObserverBus | None = None,
        options: DispatcherOptions | None = None,
        egress: EgressPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
        max_event_bytes: int = MAX_EVENT_BYTES,
        new_event_id: Callable[[], str] = _new_event_id,
        header_hook: HeaderHook | None = None,
        archive: ArchiveSetup | None = None,
    ) -> None:
        self.queue = queue
        self.archive = archive  # the event archive and replays (router.archive), when --archive-days is on
        self._header_hook = header_hook  # extra headers per attempt (tracing's traceparent)
        self.bus = bus if bus is not None else ObserverBus()
        self.options = options if options is not None else DispatcherOptions()
        self._egress = egress if egress is not None else EgressPolicy()
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._clock = clock
        self._max_event_bytes = max_event_bytes
        self._new_event_id = new_event_id
        self._table = RoutingTable()
        self._targets: dict[str, IntegrationTarget] = {}
        self._gone: set[str] = set()
        self._loaded = False
        self._put_full = False  # the latest put found the queue's storage full
        self._transport: HttpTransport | None = None
        self._dispatcher: Dispatcher | None = None
        self._background: set[asyncio.Task[None]] = set()
        targets = list(targets)
        if targets:
            self.set_targets(targets)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the queue, take back a crashed predecessor's leases, and start delivering."""
        if self._dispatcher is not None:
            return
        await self.queue.open()
        reclaimed = await self.queue.reclaim()
        if reclaimed:
            log.info("reclaimed %d deliveries leased by a previous run", reclaimed)
        self._gone = set(await self.queue.disabled_targets())
        self._transport = create_transport(
            egress=self._egress,
            ssl_context=self._ssl_context,
            limit=self.options.max_in_flight,
            resolver=self._resolver,
        )
        client = DeliveryClient(
            self._transport,
            clock=self._clock,
            retryable_4xx=self.options.retryable_4xx,
            header_hook=self._header_hook,
        )
        self._dispatcher = Dispatcher(
            self.queue,
            client,
            bus=self.bus,
            options=self.options,
            clock=self._clock,
            on_gone=self._target_gone,
            on_disabled=self._disabled_in_queue,
        )
        self._sync_dispatcher()
        self._dispatcher.start()

    async def stop(self, deadline_s: float = 10.0) -> None:
        """Stop leasing, finish or release in-flight work within ``deadline_s``, and close everything."""
        if self._dispatcher is not None:
            await self._dispatcher.stop(deadline_s)
            self._dispatcher = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        await self.queue.close()

    async def __aenter__(self) -> EventRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def storage_full(self) -> bool:
        """The queue's storage was full at the latest put, or at the dispatcher's latest lease or record."""
        return self._put_full or (self._dispatcher is not None and self._dispatcher.storage_full)

    @property
    def ready(self) -> bool:
        """Started, with a routing table loaded."""
        return self._dispatcher is not None and self._loaded

    # -- targets -----------------------------------------------------------------------------------

    def set_targets(self, targets: Iterable[IntegrationTarget]) -> None:
        """Replace the routing table (InputError or InvalidPatternError leave the old one in place)."""
        targets = list(targets)
        by_name: dict[str, IntegrationTarget] = {}
        for target in targets:
            _check_target(target)
            if target.name in by_name:
                raise InputError(f"two targets are named {target.name!r}; names must be unique")
            by_name[target.name] = target
        self._table = RoutingTable(targets)
        self._targets = by_name
        self._loaded = True
        self._sync_dispatcher()

    def upsert_target(self, target: IntegrationTarget) -> None:
        """Add a target or replace the one with its name."""
        _check_target(target)
        self._table.upsert(target)
        self._targets[target.name] = target
        self._loaded = True
        self._sync_dispatcher()

    async def remove_target(self, name: str) -> list[DeadLetter]:
        """Stop routing to ``name`` and dead-letter its pending deliveries at once (reason ``target_removed``).

        They are replayable (``replay(target=name)``) should the target come back. Not started yet: only
        the routing stops, and the queue is left alone.
        """
        self._table.remove(name)
        self._targets.pop(name, None)
        self._sync_dispatcher()
        if self._dispatcher is None:
            return []
        return await self._dispatcher.retire(name)

    async def retire_unconfigured(self) -> list[DeadLetter]:
        """Dead-letter (``target_removed``) the pending deliveries of targets the routing table lacks.

        For targets removed while no router ran (a targets file edited between two runs). Call once the
        table is complete, after ``start()``; routers sharing one queue must share one table.
        """
        if self._dispatcher is None:
            return []
        pending = (await self.queue.stats()).pending_by_target
        letters: list[DeadLetter] = []
        for name in sorted(set(pending) - set(self._targets)):
            letters += await self._dispatcher.retire(name)
        if letters:
            log.info("dead-lettered %d pending deliveries of removed targets", len(letters))
        return letters

    def target_names(self) -> list[str]:
        return sorted(self._targets)

    def match(self, event: Any) -> list[IntegrationTarget]:
        """The targets ``event`` would be routed to now; nothing is queued. InvalidEventError if not an object."""
        return [self._targets[name] for name in self._table.match(event)]

    def disabled_targets(self) -> list[str]:
        """Targets that deliver nothing now: disabled by a 410 answer or by their control-plane status."""
        return sorted(self._disabled())

    def resolve_target(self, ref: str) -> str:
        """The name of the target ``ref`` names: its name or its control-plane id.

        UnknownTargetError, naming the targets the router knows, when ``ref`` names none of them, or names
        two (one target's name is another's id). A held target no longer configured is known by name.
        """
        by_id = sorted(name for name, target in self._targets.items() if target.id == ref)
        if ref in self._targets or ref in self._gone:
            if by_id and by_id != [ref]:
                raise UnknownTargetError(
                    f"{ref!r} is ambiguous: the name of one target and the id of target {by_id[0]!r}; "
                    f"name that one by its name",
                    known=self._known(),
                )
            return ref
        if len(by_id) == 1:
            return by_id[0]
        known = self._known()
        listed = ", ".join(known[:_KNOWN_SHOWN]) + (
            f" and {len(known) - _KNOWN_SHOWN} more" if len(known) > _KNOWN_SHOWN else ""
        )
        raise UnknownTargetError(
            f"the router knows no target named or with id {ref!r}; it knows: {listed or 'no targets'}", known=known
        )

    def _known(self) -> list[str]:
        """The targets as an "unknown target" message lists them: name, and id where the router has one."""
        return [f"{name} (id {t.id})" if t.id else name for name, t in sorted(self._targets.items())]

    async def target_holds(self) -> dict[str, str]:
        """Targets whose deliveries the queue holds, and why (``TargetHold``: gone, paused), for every router."""
        return await self.queue.disabled_targets()

    async def enable_target(self, name: str) -> bool:
        """Deliver to ``name`` again after a 410 (or a pause); False when no such target is known."""
        known = name in self._targets or name in self._gone
        if not known:
            return False
        await self._release(name, "enabled")
        return True

    async def pause_target(self, name: str) -> None:
        """Hold ``name``'s deliveries in the queue, for every router sharing it, until ``resume_target``.

        Nothing is leased for it meanwhile, so no attempt is spent; deliveries leased ahead are given back
        and attempts already in flight finish. Events for it are still accepted.
        """
        await self.queue.disable_target(name, reason=TargetHold.PAUSED.value)
        self._gone.add(name)
        self._sync_dispatcher()
        self._publish_change("paused", name)

    async def resume_target(self, name: str) -> bool:
        """Release a paused target's deliveries; False when it was not paused."""
        if (await self.queue.disabled_targets()).get(name) != TargetHold.PAUSED:
            return False
        await self._release(name, "resumed")
        return True

    async def _release(self, name: str, action: str) -> None:
        """Forget the queue's hold on ``name`` (for every router) and deliver to it again; say so as ``action``."""
        self._gone.discard(name)
        await self.queue.enable_target(name)
        self._sync_dispatcher()
        self._publish_change(action, name)

    async def probe_target(self, name: str, *, wait_s: float) -> ProbeOutcome:
        """Probe ``name``'s open circuit now: it goes half-open at once (here and in the queue), so its next
        pending delivery is sent as the probe; waits up to ``wait_s`` for that attempt. A closed circuit is
        left alone (``probed=False``)."""
        if self._dispatcher is None:
            return ProbeOutcome(probed=False)
        seen: asyncio.Future[DeliveryAttempted] = asyncio.get_running_loop().create_future()

        def watch(event: ObservedEvent) -> None:
            if isinstance(event, DeliveryAttempted) and event.target == name and not seen.done():
                seen.set_result(event)

        self.bus.subscribe(watch)
        try:
            if not await self._dispatcher.probe(name):
                return ProbeOutcome(probed=False)
            self._publish_change("probed", name)
            pending = (await self.queue.stats()).pending_by_target.get(name, 0)
            if pending == 0 and not seen.done():
                return ProbeOutcome(probed=True)
            try:
                attempt = await asyncio.wait_for(asyncio.shield(seen), wait_s)
            except TimeoutError:
                return ProbeOutcome(probed=True, pending=pending)
            return ProbeOutcome(probed=True, pending=pending, attempt=attempt)
        finally:
            self.bus.unsubscribe(watch)

    def _publish_change(self, action: str, name: str, **details: object) -> None:
        target = self._targets.get(name)
        self.bus.publish(
            TargetChanged(
                action=action,
                target=name,
                target_id=target.id if target is not None else None,
                at=self._clock(),
                details=dict(details),
            )
        )

    def circuit_states(self) -> dict[str, CircuitState]:
        return self._dispatcher.circuit_states() if self._dispatcher is not None else {}

    def _disabled(self) -> set[str]:
        by_status = {name for name, t in self._targets.items() if t.status is TargetStatus.DISABLED}
        return self._gone | by_status

    def _sync_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.set_targets(self._targets)
            self._dispatcher.set_disabled(self._disabled())

    def _disabled_in_queue(self, names: set[str]) -> None:
        """The queue's disabled targets changed (another router saw a 410, or an operator enabled one)."""
        self._gone = set(names)
        self._sync_dispatcher()

    def _target_gone(self, name: str) -> None:
        self._gone.add(name)
        task = asyncio.create_task(self._remember_gone(name))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remember_gone(self, name: str) -> None:
        try:
            await self.queue.disable_target(name, reason="gone")
        except Exception:  # a background task's boundary: the target stays disabled in memory regardless
            log.exception("could not record that target %s is disabled", name)

    # -- events ------------------------------------------------------------------------------------

    async def ingest(self, events: Sequence[Any], priority: int = DEFAULT_PRIORITY) -> list[str]:
        """Accept events durably; their ids, in order, once committed. InputError names every bad event."""
        if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            self.bus.publish(IngestRejected(reason="invalid_priority", at=self._clock()))
            raise InputError(
                "invalid priority",
                [FieldError("priority", f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}")],
            )
        now = self._clock()
        errors: list[FieldError] = []
        prepared: list[QueuedEvent] = []
        step_ends = time.perf_counter() + _STEP_S
        for index, event in enumerate(events):
            item = self._prepare(index, event, priority, now, errors)
            if item is not None:
                prepared.append(item)
            if time.perf_counter() >= step_ends:
                await asyncio.sleep(0)
                step_ends = time.perf_counter() + _STEP_S
        if errors:
            self.bus.publish(IngestRejected(reason="invalid_event", at=now))
            raise InputError(f"{len(errors)} of {len(events)} events are invalid; none was accepted", errors)
        try:
            results = await self.queue.put(prepared)
        except QueueFullError:
            self._put_full = True
            raise
        self._put_full = False
        for result in results:
            self.bus.publish(EventAccepted(event_id=result.event_id, targets=result.created, priority=priority, at=now))
        if self._dispatcher is not None and any(result.created for result in results):
            self._dispatcher.notify()
        return [item.event_id for item in prepared]

    def _prepare(
        self, index: int, event: Any, priority: int, now: float, errors: list[FieldError]
    ) -> QueuedEvent | None:
        if not isinstance(event, dict):
            errors.append(FieldError(f"[{index}]", "must be a JSON object"))
            return None
        event_id = event.get("id")
        if (problem := event_id_problem(event_id)) is not None:
            errors.append(FieldError(f"[{index}].id", problem))
            return None
        if event_id is None:
            event_id = self._new_event_id()
        try:
            body = encode_event(event)
        except (TypeError, ValueError) as exc:
            errors.append(FieldError(f"[{index}]", f"is not JSON ({exc})"))
            return None
        if len(body) > self._max_event_bytes:
            errors.append(FieldError(f"[{index}]", f"is {len(body)} bytes; the limit is {self._max_event_bytes}"))
            return None
        try:
            targets = tuple(self._table.match(event))
        except InvalidEventError as exc:
            errors.append(FieldError(f"[{index}]", exc.message))
            return None
        return QueuedEvent(event_id=event_id, body=body, priority=priority, targets=targets, accepted_at=now)

    # -- the queue's contents ----------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        return await self.queue.stats()

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self.queue.dead_letters(target=target, limit=limit)

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Make dead letters pending again (all, a target's, or the named ones)."""
        count = await self.queue.replay(delivery_ids=delivery_ids, target=target)
        if count and self._dispatcher is not None:
            self._dispatcher.notify()
        return count

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int:
        """Delete dead letters for good."""
        return await self.queue.purge(delivery_ids=delivery_ids, target=target)
