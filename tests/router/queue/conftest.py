"""Queue tests: every contract test runs against every backend, on real storage, with an injected clock.

``make_queue(**options)`` opens a queue of the test's backend on storage of the test's own (a SQLite
file in tmp_path, a PostgreSQL schema created and dropped per test); queues made in one test share that
storage, as routers share a database. ``clock`` is the backend's time: tests set it, nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.router.queue import DeliveryQueue, QueuedEvent
from cxone_eventbridge.router.queue.postgres import PostgresQueue
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue

from ...clocks import T0, ManualClock


def event(event_id: str, *targets: str, priority: int = 5, at: float = T0, body: bytes | None = None) -> QueuedEvent:
    """A queued event for ``targets`` with a small JSON body naming its id."""
    return QueuedEvent(
        event_id=event_id,
        body=body if body is not None else f'{{"id":"{event_id}"}}'.encode(),
        priority=priority,
        targets=targets,
        accepted_at=at,
    )


QueueFactory = Callable[..., Awaitable[DeliveryQueue]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("postgresql-in-steps", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test; every contract test runs once per backend. PostgreSQL runs twice: as it is
    (a lease in one statement where it can) and with every lease in steps (lock, choose, claim)."""
    return str(request.param)


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where this test's queues keep their data."""
    if backend == "sqlite":
        return {"path": tmp_path / "queue.db"}
    return {"dsn": request.getfixturevalue("postgres_dsn"), "schema": request.getfixturevalue("pg_schema")}


@pytest.fixture
async def make_queue(backend: str, storage: dict[str, Any], clock: ManualClock) -> AsyncIterator[QueueFactory]:
    """An async factory of open queues on this test's storage; all closed at teardown."""
    opened: list[DeliveryQueue] = []

    async def factory(**options: Any) -> DeliveryQueue:
        options.setdefault("clock", clock)
        queue: DeliveryQueue
        if backend == "sqlite":
            queue = SQLiteQueue(storage["path"], **options)
        else:
            options.setdefault("migrate", True)
            options.setdefault("lease_at_once", backend != "postgresql-in-steps")
            queue = PostgresQueue(storage["dsn"], schema=storage["schema"], **options)
        await queue.open()
        opened.append(queue)
        return queue

    yield factory
    for queue in opened:
        await queue.close()


@pytest.fixture
async def queue(make_queue: QueueFactory) -> DeliveryQueue:
    return await make_queue()
