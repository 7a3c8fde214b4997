"""`cxeb router tail` against `cxeb router serve`, both real processes: attempts show up as they happen."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from .conftest import CXEB, KEY, RouterFactory

pytestmark = pytest.mark.e2e


async def start_tail(url: str, *args: str, banner_says: str = "following") -> asyncio.subprocess.Process:
    """`cxeb router tail` following ``url``; returns once it says it is following (``banner_says``)."""
    process = await asyncio.create_subprocess_exec(
        CXEB,
        *("router", "tail", "--url", url, *args),
        env={**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        banner = (await process.stderr.readline()).decode()
    assert banner.startswith("following"), banner
    assert banner_says in banner, banner
    return process


async def next_line(process: asyncio.subprocess.Process) -> tuple[str, float]:
    """The next stdout line and when it arrived (Unix time)."""
    assert process.stdout is not None
    async with asyncio.timeout(30):
        line = (await process.stdout.readline()).decode()
    return line, time.time()


async def stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()


async def test_tail_shows_each_attempt_as_json_and_as_a_line(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """An event sent after tail connects is printed (JSON for scripts, a readable line for people)."""
    receiver = await https_receiver()
    router = await router_process([{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}], receiver=receiver)
    as_json = await start_tail(router.url, "--output", "json")
    as_text = await start_tail(router.url)
    try:
        await router.send([{"id": "e1"}])
        line, arrived = await next_line(as_json)
        item: dict[str, Any] = json.loads(line)
        assert (item["target"], item["eventId"], item["status"], item["attempt"]) == ("crm", "e1", 200, 1)
        assert item["outcome"] == "success"
        assert item["latencyMs"] > 0
        assert arrived >= datetime.fromisoformat(item["at"]).timestamp()
        text, _ = await next_line(as_text)
        assert "crm  e1  200" in text
        assert "attempt 1" in text
    finally:
        await stop(as_json)
        await stop(as_text)


async def test_tail_failed_for_one_target_shows_only_its_failures(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """--target (by id; the banner names the target) and --failed: a healthy target's deliveries sent first
    are not shown; the failure is."""
    healthy = await https_receiver()
    broken = await https_receiver(status=400)
    router = await router_process(
        [
            {"name": "crm", "endpoint": f"{healthy.url}/hooks/crm", "eventPattern": {"kind": ["call"]}},
            {
                "name": "billing",
                "id": "tgt_b1",
                "endpoint": f"{broken.url}/hooks/billing",
                "eventPattern": {"kind": ["invoice"]},
            },
        ],
        receiver=healthy,
    )
    tail = await start_tail(
        router.url, "--output", "json", "--failed", "--target", "tgt_b1", banner_says="failed deliveries of billing"
    )
    try:
        await router.send([{"id": f"call-{n}", "kind": "call"} for n in range(5)])
        await router.send([{"id": "invoice-1", "kind": "invoice"}])
        line, _ = await next_line(tail)
        item = json.loads(line)
        assert (item["target"], item["eventId"], item["status"], item["outcome"]) == (
            "billing",
            "invoice-1",
            400,
            "permanent",
        )
    finally:
        await stop(tail)


async def test_tail_says_when_a_delivery_is_dead_lettered(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """The last attempt of a 503 says only "retry"; a `dead` line (JSON) / `DEAD` line (text) follows it,
    naming the reason and the attempts, so a script counting failures sees the dead letter."""
    broken = await https_receiver(status=503)
    policy = {"maxRetries": 1, "backoffStrategy": "fixed", "timeoutMs": 2000}
    router = await router_process(
        [{"name": "billing", "endpoint": f"{broken.url}/hooks/billing", "retryPolicy": policy}], receiver=broken
    )
    as_json = await start_tail(router.url, "--output", "json", "--failed")
    as_text = await start_tail(router.url)
    try:
        await router.send([{"id": "invoice-9"}])
        items = [json.loads((await next_line(as_json))[0]) for _ in range(3)]
        assert [(i["type"], i.get("outcome")) for i in items] == [
            ("attempt", "retry"),
            ("attempt", "retry"),
            ("dead", None),
        ]
        dead = items[2]
        assert (dead["target"], dead["eventId"], dead["attempts"], dead["status"]) == ("billing", "invoice-9", 2, 503)
        assert dead["reason"] == "retries_exhausted"
        assert dead["deliveryId"] == items[0]["deliveryId"]
        assert dead["at"].endswith("Z")
        texts = [(await next_line(as_text))[0] for _ in range(3)]
        assert "DEAD  billing  invoice-9  retries_exhausted after 2 attempt(s), the last: 503" in texts[2]
    finally:
        await stop(as_json)
        await stop(as_text)


async def test_tail_without_the_key_says_so(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """A refused key is one error line and exit 1, no traceback."""
    receiver = await https_receiver()
    router = await router_process([{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}], receiver=receiver)
    process = await asyncio.create_subprocess_exec(
        CXEB,
        *("router", "tail", "--url", router.url, "--ingest-key", "wrong-key-0123456789"),
        env={k: v for k, v in os.environ.items() if k != "CXEB_INGEST_KEY"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "401" in err.decode()
    assert "Traceback" not in err.decode()


async def test_a_router_that_stops_ends_the_stream_and_tail_exits(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """SIGTERM on the router ends every live stream (it never holds the shutdown); tail says so and exits 0."""
    receiver = await https_receiver()
    router = await router_process([{"name": "crm", "endpoint": f"{receiver.url}/hooks/crm"}], receiver=receiver)
    tail = await start_tail(router.url)
    router.process.terminate()
    async with asyncio.timeout(30):
        assert await router.process.wait() == 0
        _, err = await tail.communicate()
    assert tail.returncode == 0
    assert "the router ended the stream" in err.decode()
