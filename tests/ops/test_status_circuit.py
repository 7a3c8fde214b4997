"""`cxeb router status` against a real router whose target keeps failing: why the circuit is open, and until when."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..waiting import until
from .conftest import CXEB, KEY, RouterFactory

pytestmark = pytest.mark.e2e


async def test_status_explains_an_open_circuit(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """Five 503s in a row open the circuit; status names the reason and the next probe."""
    down = await https_receiver(status=503)
    router = await router_process(
        [{"name": "analytics", "endpoint": f"{down.url}/hooks/a", "retryPolicy": {"maxRetries": 10}}], receiver=down
    )
    await router.send([{"id": f"e{n}"} for n in range(8)])

    async def circuit_open() -> bool:  # polled over HTTP: the router announces nothing to this test
        return bool((await router.get("/v1/status"))["targets"][0]["circuit"] == "open")

    await until(circuit_open)
    process = await asyncio.create_subprocess_exec(
        CXEB,
        *("router", "status", "--url", router.url),
        env={**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1", "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "analytics" in out.decode()
    note = err.decode()
    assert "circuit of analytics is open, next probe in" in note
    assert "failed attempts in a row, the last: status 503" in note
