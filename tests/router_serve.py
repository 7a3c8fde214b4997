"""`cxeb router serve` (and any other `cxeb` command) as a real process, for the end-to-end tests.

One way to start a router, wait for it to listen, read its log and stop it, shared by tests/e2e and
tests/ops. The log is read by a task from the start, so a full stderr pipe never blocks the router, and a
test waits for a log line by its text rather than for a while.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .waiting import HANG_GUARD_S

CXEB = str(Path(sys.executable).with_name("cxeb"))
BANNER = "router listening on "


async def cxeb(*args: str, env: Mapping[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run one `cxeb` command to its end without blocking the loop: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        CXEB, *args, env=dict(env), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(HANG_GUARD_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass
class RouterProcess:
    """A running `cxeb router serve`: its URL(s), its log lines so far, and a client with the ingest key."""

    process: asyncio.subprocess.Process
    urls: list[str]
    ingest_key: str | None = None
    stderr_lines: list[str] = field(default_factory=list)
    _line_read: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The first worker's URL (all workers of one process share the port)."""
        return self.urls[0]

    @property
    def log(self) -> str:
        """Everything the router wrote to stderr so far, banner included."""
        return "".join(self.stderr_lines)

    def client(self) -> httpx.AsyncClient:
        """An HTTP client for the router's API, with the ingest key when there is one."""
        headers = {"Authorization": f"Bearer {self.ingest_key}"} if self.ingest_key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=HANG_GUARD_S)

    async def send(self, events: list[dict[str, Any]]) -> list[str]:
        """Ingest events; their ids once accepted."""
        async with self.client() as client:
            response = await client.post("/v1/events", json=events)
            assert response.status_code == 202, response.text
            ids: list[str] = response.json()["ids"]
            return ids

    async def get(self, path: str) -> Any:
        """GET a JSON route of the router's API."""
        async with self.client() as client:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.json()

    async def log_line(self, containing: str) -> str:
        """The first log line containing ``containing``, once the router has written it."""
        async with asyncio.timeout(HANG_GUARD_S):
            while True:
                self._line_read.clear()
                if line := next((line for line in self.stderr_lines if containing in line), None):
                    return line
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"the router's log ended without {containing!r}:\n{self.log}")
                await self._line_read.wait()

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the process to exit and its log to end; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(HANG_GUARD_S):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def close(self) -> None:
        """Whatever happened in the test: a SIGTERM, then a kill if it does not go, and the reader ended."""
        try:
            await self.stop()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()

    def _read_log(self) -> None:
        async def read() -> None:
            assert self.process.stderr is not None
            async for line in self.process.stderr:
                self.stderr_lines.append(line.decode())
                self._line_read.set()
            self._line_read.set()  # the end of the log is news too: log_line stops waiting

        self._reader = asyncio.create_task(read())


async def start_router(
    *args: str, env: Mapping[str, str], cwd: Path, workers: int = 1, ingest_key: str | None = None
) -> RouterProcess:
    """`cxeb router serve ARGS`, returned once each of its ``workers`` has said it is listening."""
    process = await asyncio.create_subprocess_exec(
        CXEB, "router", "serve", *args, env=dict(env), cwd=cwd, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    router = RouterProcess(process=process, urls=[], ingest_key=ingest_key)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while len(router.urls) < workers:
                line = (await process.stderr.readline()).decode()
                assert line, f"the router exited before listening:\n{router.log}"
                router.stderr_lines.append(line)
                if line.startswith(BANNER):
                    router.urls.append(line.split()[3])
    except BaseException:
        await router.close()
        raise
    router._read_log()
    return router


@asynccontextmanager
async def serving(
    *args: str, env: Mapping[str, str], cwd: Path, workers: int = 1, ingest_key: str | None = None
) -> AsyncIterator[RouterProcess]:
    """``start_router`` for the ``async with`` block; the process is stopped (or killed) when it ends."""
    router = await start_router(*args, env=env, cwd=cwd, workers=workers, ingest_key=ingest_key)
    try:
        yield router
    finally:
        await router.close()


_HOLD_OWNER_NAME = """\
import asyncio, sys
from cxone_eventbridge.router.queue.postgres import PostgresQueue
async def main():
    queue = PostgresQueue(sys.argv[1], schema=sys.argv[2], owner=sys.argv[3])
    await queue.open()
    await queue.reclaim()  # takes the owner name, as a router does at its start
    print("held", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


@asynccontextmanager
async def owner_name_held(dsn: str, schema: str, owner: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another live process holding ``owner`` on a PostgreSQL queue, as a router does from its start (the
    process, once it holds the name); killed when the block ends if it still runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD_OWNER_NAME, dsn, schema, owner, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(HANG_GUARD_S):
            assert await process.stdout.readline() == b"held\n"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
