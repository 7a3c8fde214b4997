"""Done-when: a router process killed with SIGKILL mid-run and restarted still delivers every accepted event."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.router.queue import delivery_id_for

from ..waiting import HANG_GUARD_S
from .conftest import HeldRequests

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("router_process.py")


async def spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )


async def test_sigkill_mid_run_then_restart_delivers_every_accepted_event(
    https_receiver: Any, tmp_path: Path, held_requests: HeldRequests
) -> None:
    """Kill -9 while deliveries are in flight and pending; the restarted router reclaims and delivers all."""
    receiver = await https_receiver(latency_ms=1, sleep=held_requests)  # nothing is answered until released
    db = str(tmp_path / "crash.db")
    args = (db, receiver.url, str(receiver.ca_path), "400")
    first = await spawn("ingest", *args)
    assert first.stdout is not None
    accepted: list[str] = []
    async with asyncio.timeout(HANG_GUARD_S):
        while len(accepted) < 200:
            line = await first.stdout.readline()
            assert line, (await first.stderr.read()).decode() if first.stderr else "router exited"
            accepted.append(line.decode().strip())
    await held_requests.wait_for(1)  # deliveries are in flight at the kill
    delivered_before_kill = receiver.request_count
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    # Ids whose line was already written when the process died were committed too; read the rest.
    assert first.stdout is not None
    accepted += [line for line in (await first.stdout.read()).decode().split() if line]
    assert delivered_before_kill < len(accepted), "the kill should leave work undelivered"

    held_requests.release()  # the held requests' connections died with the router; answer the next ones
    second = await spawn("drain", *args)
    async with asyncio.timeout(HANG_GUARD_S):
        out, err = await second.communicate()
    assert second.returncode == 0, err.decode()
    assert out.decode().strip().endswith("drained")

    received = {r["headers"].get("webhook-id") or r["headers"].get("Webhook-Id") for r in receiver.records()}
    missing = [event_id for event_id in accepted if delivery_id_for(event_id, "crm") not in received]
    assert missing == []
