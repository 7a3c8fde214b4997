"""Done-when of the scale-out: three router processes on one PostgreSQL, one SIGKILLed mid-run.

20,000 events are ingested through the three routers (a third each, each share starting with a
backlog for ``paced``); router 3 is killed with SIGKILL
once its share is accepted, with deliveries in flight, and is not restarted. The other two take its
leases over when they end. Every accepted event is delivered; duplicates (deliveries in flight at the
kill) are counted, and the receiver dedupes by ``webhook-id``. The ``capped`` target (maxInFlight 4)
never sees more than 4 concurrent requests across the three routers, and ``paced``
(rateLimitPerSecond 50) never more than 50 in any one-second window [t, t + 1) at the receiver.

No step has a deadline of its own: each waits as long as the routers make progress (a new accepted id,
a new delivery) and fails only after ``STALL_S`` without any, so a loaded machine slows it down but
does not fail it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from cxone_eventbridge.router.queue import delivery_id_for
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.receiver import server_ssl_context

from . import postgres_router

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.postgres,
    # About 6 minutes on the shared 2-core machine (three routers, the receiver and PostgreSQL on two
    # cores at load 6-9): .ci/run runs it; a plain `make test` only when asked.
    pytest.mark.skipif(
        os.environ.get("CXEB_SCALE_TEST") != "1", reason="the three-router scale test runs with CXEB_SCALE_TEST=1"
    ),
]

SCRIPT = Path(__file__).with_name("postgres_router.py")
EVENTS = 20_000
ROUTERS = 3
# How long a step may go without any progress before the test calls it a hang (not a speed limit).
STALL_S = 300
# The routers' stderr goes to this file when CXEB_SCALE_TEST_LOG names one.
LOG = Path(os.environ["CXEB_SCALE_TEST_LOG"]) if os.environ.get("CXEB_SCALE_TEST_LOG") else None


class CountingReceiver:
    """HTTPS receiver that counts deliveries per webhook-id, concurrency per target and arrival times.

    ``paced`` is served on a port, event loop and thread of its own, as a rate-limited destination is a
    receiver of its own: its arrival times are then read when its requests arrive, not after the main
    loop's queue of bulk requests (about 18,000 of them) let its handler run. Counting by webhook-id stays
    on the main loop.
    """

    def __init__(self) -> None:
        self.by_id: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {"bulk": [], "capped": [], "paced": []}
        self.progress = asyncio.Event()  # set on every request
        self.expected: set[str] = set()
        self.complete = asyncio.Event()
        self.url = ""
        self.paced_url = ""
        self._runner: Any = None
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._paced_loop = asyncio.new_event_loop()
        self._paced_thread = threading.Thread(target=self._paced_loop.run_forever, name="paced-receiver", daemon=True)
        self._paced_runner: Any = None

    def delivered(self, webhook_id: str) -> None:
        """Count one delivery (on the main loop)."""
        self.progress.set()
        self.by_id[webhook_id] += 1
        if self.expected and self.expected.issubset(self.by_id.keys()):
            self.complete.set()

    async def handle(self, request: web.Request) -> web.Response:
        target = request.path.rsplit("/", 1)[-1]
        self.arrivals[target].append(time.monotonic())
        self.progress.set()
        self.in_flight[target] += 1
        self.max_in_flight[target] = max(self.max_in_flight[target], self.in_flight[target])
        try:
            await request.read()
            if target == "capped":
                await asyncio.sleep(0.01)  # long enough for concurrent requests to overlap
        finally:
            self.in_flight[target] -= 1
        self.delivered(request.headers["webhook-id"])
        return web.Response(status=200, text="{}")

    async def handle_paced(self, request: web.Request) -> web.Response:
        """On the paced thread's loop: note the arrival, hand the count to the main loop."""
        self.arrivals["paced"].append(time.monotonic())
        await request.read()
        assert self._main_loop is not None
        self._main_loop.call_soon_threadsafe(self.delivered, request.headers["webhook-id"])
        return web.Response(status=200, text="{}")

    async def start(self, certs_dir: Path) -> Path:
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        certs = ensure_certificates(certs_dir)
        self._main_loop = asyncio.get_running_loop()
        self._runner = web.ServerRunner(web.Server(self.handle, access_log=None), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs), backlog=1024)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

        async def start_paced() -> Any:
            runner = web.ServerRunner(web.Server(self.handle_paced, access_log=None), handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs), backlog=1024).start()
            return runner

        self._paced_thread.start()
        self._paced_runner = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(start_paced(), self._paced_loop)
        )
        self.paced_url = f"https://127.0.0.1:{self._paced_runner.addresses[0][1]}"
        return certs.ca

    async def stop(self) -> None:
        await self._runner.cleanup()
        if self._paced_runner is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._paced_runner.cleanup(), self._paced_loop))
        self._paced_loop.call_soon_threadsafe(self._paced_loop.stop)
        await asyncio.to_thread(self._paced_thread.join, 30)
        self._paced_loop.close()


async def spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    if LOG is None:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
    with LOG.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=log, env=env
        )


async def read_accepted(process: asyncio.subprocess.Process, until_done: bool) -> list[str]:
    """Accepted ids a router wrote, up to its 'ingested' line (or to its end, once it is dead); each line
    may take up to STALL_S."""
    assert process.stdout is not None
    ids: list[str] = []
    while True:
        try:
            async with asyncio.timeout(STALL_S):
                line = (await process.stdout.readline()).decode().strip()
        except TimeoutError:
            pytest.fail(f"a router accepted nothing for {STALL_S} s after {len(ids)} ids")
        if not line or (line == "ingested" and until_done):
            return ids
        if line != "ingested":
            ids.append(line)


async def wait_while_progressing(receiver: CountingReceiver) -> bool:
    """Wait until every expected delivery arrived (True), or until STALL_S pass without a request (False)."""
    while not receiver.complete.is_set():
        receiver.progress.clear()
        try:
            async with asyncio.timeout(STALL_S):
                await receiver.progress.wait()
        except TimeoutError:
            return receiver.complete.is_set()
    return True


def most_in_one_second(arrivals: list[float]) -> int:
    """The most arrivals in any window [t, t + 1) (a busiest window starts at an arrival)."""
    ordered = sorted(arrivals)
    most = 0
    end = 0
    for start, at in enumerate(ordered):
        while end < len(ordered) and ordered[end] < at + 1.0:
            end += 1
        most = max(most, end - start)
    return most


def kind_of(event_id: str) -> str:
    return postgres_router.kind_of(int(event_id[1:]))


async def test_three_routers_one_killed_deliver_everything_within_shared_limits(
    postgres_dsn: str, pg_schema: str, receiver_certs_dir: Path
) -> None:
    """Every event accepted by any of three routers is delivered though one is SIGKILLed; limits hold across them."""
    receiver = CountingReceiver()
    ca = await receiver.start(receiver_certs_dir)
    queue_url = f"{postgres_dsn}?schema={pg_schema}"
    share = EVENTS // ROUTERS + 1
    assert share == postgres_router.SHARE
    routers: list[asyncio.subprocess.Process] = []
    try:
        # The first router migrates the schema; the others start once it is there.
        urls = (receiver.url, receiver.paced_url)
        routers.append(await spawn(queue_url, *urls, str(ca), "0", str(share)))
        accepted = await read_accepted(routers[0], until_done=True)
        for n in range(1, ROUTERS):
            first = n * share
            routers.append(await spawn(queue_url, *urls, str(ca), str(first), str(min(share, EVENTS - first))))
        accepted += await read_accepted(routers[1], until_done=True)
        victim = await read_accepted(routers[2], until_done=True)
        delivered_before_kill = len(receiver.by_id)
        routers[2].send_signal(signal.SIGKILL)
        await routers[2].wait()
        accepted += victim
        assert len(accepted) == EVENTS
        did_kind = {delivery_id_for(event_id, kind_of(event_id)): kind_of(event_id) for event_id in accepted}
        receiver.expected = set(did_kind)
        assert delivered_before_kill < len(receiver.expected), "the kill should leave work undelivered"
        if receiver.expected.issubset(receiver.by_id.keys()):
            receiver.complete.set()
        if not await wait_while_progressing(receiver):
            missing = Counter(did_kind[did] for did in receiver.expected - receiver.by_id.keys())
            conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
            try:
                states = await conn.fetch("SELECT target, state, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")
                target_state = await conn.fetch("SELECT * FROM target_state")
            finally:
                await conn.close()
            pytest.fail(
                f"nothing delivered for {STALL_S} s; undelivered by target: {dict(missing)};"
                f" queue: {[tuple(r) for r in states]};"
                f" target state: {[tuple(r) for r in target_state]}"
            )
    finally:
        for process in routers:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await receiver.stop()

    duplicates = sum(receiver.by_id.values()) - len(receiver.by_id)
    paced = receiver.arrivals["paced"]
    busiest = most_in_one_second(paced)
    print(  # the figures the issue asks to count (shown with -s)
        f"\n{EVENTS} events, {duplicates} duplicate deliveries after the SIGKILL; capped: at most"
        f" {receiver.max_in_flight['capped']} in flight; paced: {len(paced)} requests, at most {busiest} in one"
        f" second, {len(paced) / (max(paced) - min(paced)):.1f}/s over {max(paced) - min(paced):.1f} s"
    )
    assert duplicates <= 256 + 64  # at most what the killed router could hold: max_in_flight + prefetch
    assert receiver.max_in_flight["capped"] <= 4
    assert busiest <= 50
    assert len(paced) >= postgres_router.PACED_PER_ROUTER * ROUTERS
