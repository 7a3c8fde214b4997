"""The one composition root of a router: settings in, a ready-to-start ``EventRouter`` out.

``cxeb router serve``, the demo and the tests build their routers here, so a router is assembled the
same way everywhere: a queue from its URL, the dispatcher's options, the egress policy and the TLS trust
for deliveries, the observer bus.

Queue URLs:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — the embedded default, one router
  per file (its schema is migrated on open);
- ``postgresql://user@host:5432/db?schema=cxeb`` — shared by any number of routers; ``schema`` (default
  ``cxeb``) names the schema its tables live in. Its schema is migrated by ``cxeb router migrate`` (or on
  start with ``migrate=True``); a router refuses a database it does not know the schema of.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from cxone_eventbridge.exceptions import ConfigurationError
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.router.archive import DAY_S, ArchiveSetup, AttemptRecorder, archive_for, with_replay_headers
from cxone_eventbridge.router.delivery import HeaderHook
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.queue import DeliveryQueue
from cxone_eventbridge.router.queue.postgres import PostgresQueue
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue, Synchronous
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, system_resolver
from cxone_eventbridge.wire import MAX_EVENT_BYTES

DEFAULT_QUEUE_URL = "sqlite:///cxeb-router.db"
_POSTGRES_SCHEMES = ("postgresql", "postgres")
MAX_ARCHIVE_DAYS = 3650


def sqlite_url(path: Path) -> str:
    """The queue URL of a SQLite file (what ``--db PATH`` means)."""
    return f"sqlite:///{path}"


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Everything that decides how a router is built. ``owner`` names this router in the queue's leases
    (stable across restarts; default: the host name); ``migrate`` lets a PostgreSQL queue's schema be
    migrated on start."""

    queue_url: str = DEFAULT_QUEUE_URL
    owner: str = field(default_factory=socket.gethostname)
    migrate: bool = False
    dispatcher: DispatcherOptions = field(default_factory=DispatcherOptions)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    ssl_context: ssl.SSLContext | None = None
    max_event_bytes: int = MAX_EVENT_BYTES
    sqlite_synchronous: Synchronous = "FULL"
    sqlite_max_size_bytes: int | None = None  # a cap on the SQLite file (QueueFullError beyond it); None: the disk
    postgres_pool_size: int = 4
    archive_days: float = 0.0  # keep accepted events and every attempt this long, for replays (0: off)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``; ConfigurationError naming the URL's scheme otherwise."""
        scheme = urlsplit(self.queue_url).scheme
        if scheme == "sqlite":
            return "sqlite"
        if scheme in _POSTGRES_SCHEMES:
            return "postgresql"
        raise ConfigurationError(
            f"--queue: unknown scheme {scheme or '(none)'!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
        )


def open_queue(settings: RouterConfig, *, clock: Callable[[], float] | None = None) -> DeliveryQueue:
    """The (unopened) queue ``settings.queue_url`` names. ``clock`` replaces the backend's time (tests)."""
    if settings.backend == "sqlite":
        path = settings.queue_url[len("sqlite:///") :]
        if not path:
            raise ConfigurationError("--queue: a sqlite URL needs a path: sqlite:///PATH")
        return SQLiteQueue(
            Path(path),
            owner=settings.owner,
            synchronous=settings.sqlite_synchronous,
            max_size_bytes=settings.sqlite_max_size_bytes,
            clock=clock or time.time,
            keep_unmatched=settings.archive_days > 0,
        )
    parts = urlsplit(settings.queue_url)
    query = parse_qs(parts.query)
    schema = query.pop("schema", ["cxeb"])[-1]
    dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    try:
        return PostgresQueue(
            dsn,
            schema=schema,
            owner=settings.owner,
            migrate=settings.migrate,
            pool_size=settings.postgres_pool_size,
            clock=clock,
            keep_unmatched=settings.archive_days > 0,
        )
    except ValueError as exc:
        raise ConfigurationError(f"--queue: {exc}") from exc


def build_router(
    settings: RouterConfig,
    *,
    targets: Iterable[IntegrationTarget] = (),
    bus: ObserverBus | None = None,
    clock: Callable[[], float] = time.time,
    queue_clock: Callable[[], float] | None = None,
    resolver: Resolver = system_resolver,
    header_hook: HeaderHook | None = None,
) -> EventRouter:
    """A router on the queue ``settings`` names, not started yet (``await router.start()`` or ``async with``).

    ``clock`` is the router's time; ``queue_clock`` replaces the queue backend's (tests that move time);
    ``header_hook`` adds headers to each attempt (``observe.tracing.RouterTracing.webhook_headers``).
    With ``archive_days`` the router keeps events and attempts for replays (``router.archive``).
    """
    queue = open_queue(settings, clock=queue_clock)
    options = settings.dispatcher
    archive = None
    if settings.archive_days > 0:
        if settings.archive_days > MAX_ARCHIVE_DAYS:
            raise ConfigurationError(f"--archive-days: at most {MAX_ARCHIVE_DAYS}, got {settings.archive_days:g}")
        bus = bus if bus is not None else ObserverBus()
        archive = ArchiveSetup(archive_for(queue), keep_s=settings.archive_days * DAY_S, runner=settings.owner)
        bus.subscribe(AttemptRecorder(archive.store))
        header_hook = with_replay_headers(header_hook)
        # Delivered rows (and so their events) stay for the archive period: an archived event keeps its
        # deliveries' final states.
        options = replace(options, retention_s=max(options.retention_s, archive.keep_s))
    return EventRouter(
        queue,
        archive=archive,
        targets=targets,
        bus=bus,
        options=options,
        egress=settings.egress,
        ssl_context=settings.ssl_context,
        resolver=resolver,
        clock=clock,
        max_event_bytes=settings.max_event_bytes,
        header_hook=header_hook,
    )


async def migrate_queue(settings: RouterConfig) -> int:
    """Bring the queue's schema to the version this code knows; the version it is at afterwards."""
    queue = open_queue(RouterConfig(queue_url=settings.queue_url, owner=settings.owner, migrate=True))
    await queue.open()
    try:
        version = getattr(queue, "schema_version", None)
    finally:
        await queue.close()
    return int(version or 0)
