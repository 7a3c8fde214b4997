"""What every route handler of the router's HTTP API reaches: the router, the configuration, the observers."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from cxone_eventbridge.exceptions import IngestError, UnknownTargetError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.observe.metrics import AuditHealthSource, RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.queue import DEFAULT_PRIORITY, DeadLetter, QueueStats

if TYPE_CHECKING:
    from cxone_eventbridge.router.event_router import ProbeOutcome
    from cxone_eventbridge.router.http_api import ServiceConfig


class RouterOperations(Protocol):
    """What the HTTP API needs from the router (``router.event_router.EventRouter`` provides it)."""

    async def ingest(self, events: Sequence[Any], priority: int = DEFAULT_PRIORITY) -> list[str]: ...

    async def stats(self) -> QueueStats: ...

    async def dead_letters(self, *, target: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int: ...

    async def purge(self, *, delivery_ids: Sequence[str] | None = None, target: str | None = None) -> int: ...

    def resolve_target(self, ref: str) -> str: ...

    async def target_holds(self) -> dict[str, str]: ...

    async def enable_target(self, name: str) -> bool: ...

    async def pause_target(self, name: str) -> None: ...

    async def resume_target(self, name: str) -> bool: ...

    async def probe_target(self, name: str, *, wait_s: float) -> ProbeOutcome: ...

    def target_names(self) -> list[str]: ...

    def match(self, event: Any) -> list[IntegrationTarget]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def storage_full(self) -> bool: ...


@dataclass
class ApiContext:
    """The API's shared state; ``draining`` turns once, when the API stops accepting."""

    router: RouterOperations
    config: ServiceConfig
    bus: ObserverBus
    metrics: RouterMetrics
    status: StatusTracker
    audit: AuditHealthSource | None = None
    clock: Callable[[], float] = field(default=time.time)
    draining: bool = False


CONTEXT = web.AppKey("cxeb_api_context", ApiContext)


def of(request: web.Request) -> ApiContext:
    """The context of the app serving ``request``."""
    return request.app[CONTEXT]


def resolve_target(request: web.Request, ref: str, *, field: str = "target") -> str:
    """The name of the target ``ref`` names (its name or control-plane id); 404 naming what the router
    knows when it names none, or two."""
    try:
        return of(request).router.resolve_target(ref)
    except UnknownTargetError as exc:
        raise IngestError(404, "not_found", exc.message, [(field, ref)]) from None
