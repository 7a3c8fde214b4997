"""Done-when of the scale-out: three router processes on one PostgreSQL, one SIGKILLed mid-run.

20,000 events are ingested through the three routers (a third each); router 3 is killed with SIGKILL
once its share is accepted, with deliveries in flight, and is not restarted. The other two take its
leases over when they end. Every accepted event is delivered; duplicates (deliveries in flight at the
kill) are counted, and the receiver dedupes by ``webhook-id``. The ``capped`` target (maxInFlight 4)
never sees more than 4 concurrent requests across the three routers, and ``paced``
(rateLimitPerSecond 50) never more than 50 in any calendar second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
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

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.postgres,
    # About 150 s on the shared 2-core machine (three routers, the receiver and PostgreSQL on two cores):
    # .ci/run runs it; a plain `make test` only when asked.
    pytest.mark.skipif(
        os.environ.get("CXEB_SCALE_TEST") != "1", reason="the three-router scale test runs with CXEB_SCALE_TEST=1"
    ),
]

SCRIPT = Path(__file__).with_name("postgres_router.py")
EVENTS = 20_000
ROUTERS = 3
# Guards against a hang, not speed limits: the whole test takes about 2-3 minutes on a busy 2-core machine.
HANG_GUARD_S = 420
# The routers' stderr goes to this file when CXEB_SCALE_TEST_LOG names one.
LOG = Path(os.environ["CXEB_SCALE_TEST_LOG"]) if os.environ.get("CXEB_SCALE_TEST_LOG") else None


class CountingReceiver:
    """HTTPS receiver that counts deliveries per webhook-id, concurrency per target and arrivals per second."""

    def __init__(self) -> None:
        self.by_id: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.per_second: dict[str, Counter[int]] = {"bulk": Counter(), "capped": Counter(), "paced": Counter()}
        self.expected: set[str] = set()
        self.complete = asyncio.Event()
        self.url = ""
        self._runner: Any = None

    async def handle(self, request: web.Request) -> web.Response:
        target = request.path.rsplit("/", 1)[-1]
        self.per_second[target][int(time.time())] += 1
        self.in_flight[target] += 1
        self.max_in_flight[target] = max(self.max_in_flight[target], self.in_flight[target])
        try:
            await request.read()
            if target == "capped":
                await asyncio.sleep(0.01)  # long enough for concurrent requests to overlap
        finally:
            self.in_flight[target] -= 1
        self.by_id[request.headers["webhook-id"]] += 1
        if self.expected and self.expected.issubset(self.by_id.keys()):
            self.complete.set()
        return web.Response(status=200, text="{}")

    async def start(self, certs_dir: Path) -> Path:
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        certs = ensure_certificates(certs_dir)
        self._runner = web.ServerRunner(web.Server(self.handle, access_log=None), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs), backlog=1024)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return certs.ca

    async def stop(self) -> None:
        await self._runner.cleanup()


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
    """Accepted ids a router wrote, up to its 'ingested' line (or to its end, once it is dead)."""
    assert process.stdout is not None
    ids: list[str] = []
    while True:
        line = (await process.stdout.readline()).decode().strip()
        if not line or (line == "ingested" and until_done):
            return ids
        if line != "ingested":
            ids.append(line)


def kind_of(event_id: str) -> str:
    index = int(event_id[1:])
    return "paced" if index % 40 == 0 else "capped" if index % 20 == 1 else "bulk"


async def test_three_routers_one_killed_deliver_everything_within_shared_limits(
    postgres_dsn: str, pg_schema: str, receiver_certs_dir: Path
) -> None:
    """Every event accepted by any of three routers is delivered though one is SIGKILLed; limits hold across them."""
    receiver = CountingReceiver()
    ca = await receiver.start(receiver_certs_dir)
    queue_url = f"{postgres_dsn}?schema={pg_schema}"
    share = EVENTS // ROUTERS + 1
    routers: list[asyncio.subprocess.Process] = []
    try:
        # The first router migrates the schema; the others start once it is there.
        routers.append(await spawn(queue_url, receiver.url, str(ca), "0", str(share)))
        async with asyncio.timeout(HANG_GUARD_S):
            accepted = await read_accepted(routers[0], until_done=True)
        for n in range(1, ROUTERS):
            first = n * share
            routers.append(await spawn(queue_url, receiver.url, str(ca), str(first), str(min(share, EVENTS - first))))
        async with asyncio.timeout(HANG_GUARD_S):
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
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                await receiver.complete.wait()
        except TimeoutError:
            missing = Counter(did_kind[did] for did in receiver.expected - receiver.by_id.keys())
            conn = await asyncpg.connect(postgres_dsn, server_settings={"search_path": pg_schema})
            try:
                states = await conn.fetch("SELECT target, state, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")
                target_state = await conn.fetch("SELECT * FROM target_state")
            finally:
                await conn.close()
            pytest.fail(
                f"undelivered after {HANG_GUARD_S} s, by target: {dict(missing)}; queue: {[tuple(r) for r in states]};"
                f" target state: {[tuple(r) for r in target_state]}"
            )
    finally:
        for process in routers:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await receiver.stop()

    duplicates = sum(receiver.by_id.values()) - len(receiver.by_id)
    print(
        f"\n{EVENTS} events, {duplicates} duplicate deliveries after the SIGKILL"
    )  # the figure the issue asks to count (shown with -s)
    assert duplicates <= 256 + 64  # at most what the killed router could hold: max_in_flight + prefetch
    assert receiver.max_in_flight["capped"] <= 4
    assert max(receiver.per_second["paced"].values()) <= 50
    assert sum(receiver.per_second["paced"].values()) >= EVENTS // 40
