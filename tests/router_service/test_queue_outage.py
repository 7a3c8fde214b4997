"""A router on PostgreSQL whose database goes away and comes back: 503s and not-ready meanwhile, then recovery.

The database is reached through a TCP proxy on loopback that the test takes down and brings back up (the
server itself is shared, so it is not restarted); taking it down drops every connection, as a restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from ..waiting import until
from .conftest import StackFactory

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


class TcpProxy:
    """Forwards a loopback port to the database; ``down()`` closes it and drops every connection."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            writer.transport.abort()
            up_writer.transport.abort()
        finally:
            self._writers.difference_update((writer, up_writer))
            self._tasks.discard(task)


@pytest.fixture
async def proxy(postgres_dsn: str) -> AsyncIterator[TcpProxy]:
    """A proxy to the test database, up; closed after the router that uses it has stopped."""
    server = urlsplit(postgres_dsn)
    running = TcpProxy(server.hostname or "127.0.0.1", server.port or 5432)
    await running.up()
    yield running
    await running.down()


async def test_database_down_means_503_and_not_ready_then_recovery_without_loss(
    pg_schema: str,  # first, so torn down last: the router stops before its schema is dropped
    proxy: TcpProxy,
    router_stack: StackFactory,
    postgres_dsn: str,
) -> None:
    """While the database is unreachable ingest answers 503 and /readyz 503; once it is back, the router
    reconnects by itself and everything accepted (before and after) is delivered."""
    server = urlsplit(postgres_dsn)
    proxied = server._replace(netloc=f"{server.username}@127.0.0.1:{proxy.port}").geturl()
    stack = await router_stack(queue_url=f"{proxied}?schema={pg_schema}")
    status, body, _ = await stack.call("POST", "/v1/events", json=[{"id": "before"}])
    assert status == 202
    await stack.outcomes.wait(delivered=1)

    await proxy.down()
    status, body, _ = await stack.call("POST", "/v1/events", json=[{"id": "during"}])
    assert (status, body["error"]) == (503, "queue_unavailable")
    status, body, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 503
    assert any("queue" in problem for problem in body["problems"])

    await proxy.up()

    async def accepted_after() -> bool:  # the reconnect, which nothing announces
        status, _, _ = await stack.call("POST", "/v1/events", json=[{"id": "after"}])
        return status == 202

    await until(accepted_after)
    await stack.outcomes.wait(delivered=2)
    status, _, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 200
