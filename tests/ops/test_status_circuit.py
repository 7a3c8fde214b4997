"""`cxeb router status` against a real router whose target keeps failing: why the circuit is open, and until when."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..waiting import until
from .conftest import RouterFactory, cxeb

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
    code, out, note = await cxeb("router", "status", "--url", router.url)
    assert code == 0, note
    assert "analytics" in out
    assert "circuit of analytics is open, next probe in" in note
    assert "failed attempts in a row, the last: status 503" in note


async def test_status_at_80_columns_keeps_target_names_words_whole(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], router_process: RouterFactory
) -> None:
    """The README Quickstart's target names at COLUMNS=80: a name may wrap between its words, never inside
    one (the table once left the name 7 columns: "Complia", "nce", "archive")."""
    receiver = await https_receiver()
    names = ["Compliance archive", "Negative sentiment alerts", "Voice escalations"]
    router = await router_process(
        [{"name": name, "endpoint": f"{receiver.url}/hooks/{n}"} for n, name in enumerate(names)], receiver=receiver
    )
    await router.send([{"id": "e1"}])

    async def delivered() -> bool:
        return all(row["delivered"] == 1 for row in (await router.get("/v1/status"))["targets"])

    await until(delivered)
    code, out, err = await cxeb("router", "status", "--url", router.url, columns=80)
    assert code == 0, err
    cells = [cell.strip() for line in out.splitlines() for cell in line.split("│")[1:2]]
    words = {word for cell in cells for word in cell.split()}
    for name in names:
        assert set(name.split()) <= words, (name, cells)
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "P50/P99 MS" in out
