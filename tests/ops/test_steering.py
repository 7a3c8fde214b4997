"""Steering a real router: `cxeb router pause|resume|probe TARGET` against `cxeb router serve` and a receiver.

"Held" is never proven by waiting: a second target (``witness``) matches every event too, so once the
witness has an event, the router has leased and sent that event's deliveries; the paused target's
must then still be in the queue, unsent. After a resume, a canary event sent last is delivered, and
with it everything held, each on its first attempt.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cxone_eventbridge.sandbox.receiver import ReceiverConfig, RunningReceiver, start_receiver

from ..ports import free_port
from ..waiting import until
from .conftest import RouterFactory, RouterProcess, cxeb

pytestmark = pytest.mark.e2e

ReceiverFactory = Callable[..., Awaitable[RunningReceiver]]


def received(receiver: RunningReceiver, path: str) -> list[str]:
    """The event ids ``receiver`` got on ``path``, in order of arrival."""
    return [json.loads(r["body"])["id"] for r in receiver.records() if r["path"] == path]


async def stop(router: RouterProcess) -> None:
    router.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await router.process.wait() == 0


def targets_on(receiver: RunningReceiver, **crm: Any) -> list[dict[str, Any]]:
    return [
        {"name": "crm", "endpoint": f"{receiver.url}/hooks/crm", **crm},
        {"name": "witness", "endpoint": f"{receiver.url}/hooks/witness"},
    ]


def metric(text: str, name: str, target: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("target") == target:
                return float(sample.value)
    raise AssertionError(f"no {name} series for {target}")


async def test_pause_holds_deliveries_across_a_restart_and_resume_releases_them(
    https_receiver: ReceiverFactory, router_process: RouterFactory
) -> None:
    """Paused: accepted but unsent, through a restart, spending no attempt; resumed: all delivered once."""
    receiver = await https_receiver()
    router = await router_process(targets_on(receiver), receiver=receiver)
    code, _, err = await cxeb("router", "pause", "crm", "--url", router.url)
    assert code == 0, err
    assert "target crm paused" in err

    await router.send([{"id": "held-1"}])
    await until(lambda: "held-1" in received(receiver, "/hooks/witness"))
    assert received(receiver, "/hooks/crm") == []
    status = await router.get("/v1/status?target=crm")
    assert [(row["target"], row["hold"], row["attempts"]) for row in status["targets"]] == [("crm", "paused", 0)]
    assert status["queue"]["pendingByTarget"] == {"crm": 1}

    await stop(router)  # the pause is the queue's: a new router on the same queue keeps it
    router = await router_process(targets_on(receiver), receiver=receiver)
    await router.send([{"id": "held-2"}])
    await until(lambda: "held-2" in received(receiver, "/hooks/witness"))
    assert received(receiver, "/hooks/crm") == []
    async with router.client() as client:
        scrape = (await client.get("/metrics")).text
    assert metric(scrape, "cxeb_target_paused", "crm") == 1
    assert metric(scrape, "cxeb_target_paused", "witness") == 0
    code, _, err = await cxeb("router", "status", "--url", router.url)
    assert code == 0, err
    assert "target crm is paused: its deliveries wait in the queue (`cxeb router resume crm`)" in err

    code, out, err = await cxeb("router", "resume", "crm", "--url", router.url, "--output", "json")
    assert code == 0, err
    assert json.loads(out) == {"target": "crm", "paused": False, "changed": True}
    await router.send([{"id": "canary"}])
    await until(lambda: "canary" in received(receiver, "/hooks/crm"))
    await until(lambda: len(received(receiver, "/hooks/crm")) == 3)
    assert sorted(received(receiver, "/hooks/crm")) == ["canary", "held-1", "held-2"]
    row = (await router.get("/v1/status?target=crm"))["targets"][0]
    assert (row["hold"], row["attempts"], row["retries"], row["delivered"]) == (None, 3, 0, 3)
    log = "".join(router.stderr_lines)
    assert "target crm resumed" in log


async def test_pause_and_resume_name_a_target_by_id_and_say_what_they_did(
    https_receiver: ReceiverFactory, router_process: RouterFactory
) -> None:
    """The control-plane id works where the name does; repeating a pause or resume changes nothing, says so."""
    receiver = await https_receiver()
    router = await router_process(targets_on(receiver, id="tgt_7f3a"), receiver=receiver)
    code, _, err = await cxeb("router", "pause", "tgt_7f3a", "--url", router.url)
    assert (code, "target crm paused" in err) == (0, True), err
    code, _, err = await cxeb("router", "pause", "crm", "--url", router.url)
    assert (code, "target crm was already paused" in err) == (0, True), err
    code, out, err = await cxeb("router", "status", "--target", "tgt_7f3a", "--url", router.url, "--output", "json")
    assert code == 0, err
    assert [(row["target"], row["hold"]) for row in json.loads(out)["targets"]] == [("crm", "paused")]
    code, _, err = await cxeb("router", "resume", "tgt_7f3a", "--url", router.url)
    assert (code, "target crm resumed" in err) == (0, True), err
    code, _, err = await cxeb("router", "resume", "crm", "--url", router.url)
    assert (code, "target crm was not paused" in err) == (0, True), err
    code, _, err = await cxeb("router", "pause", "nobody", "--url", router.url)
    assert code == 1
    assert "knows no target named or with id 'nobody'; it knows: crm (id tgt_7f3a), witness" in err


async def test_probe_sends_the_open_circuits_probe_now_and_reports_its_outcome(
    https_receiver: ReceiverFactory, router_process: RouterFactory, receiver_certs_dir: Path, tmp_path: Path
) -> None:
    """Down: the probe fails at once (exit 1) and the circuit reopens; up: the probe goes out before the
    circuit's wait ends, succeeds and closes it. A closed circuit has nothing to probe."""
    witness = await https_receiver()
    port = free_port()  # nothing listens here yet: every attempt is refused
    crm = {"name": "crm", "endpoint": f"https://127.0.0.1:{port}/hooks/crm", "retryPolicy": {"maxRetries": 10}}
    router = await router_process([crm, {"name": "witness", "endpoint": f"{witness.url}/w"}], receiver=witness)
    await router.send([{"id": f"e{n}"} for n in range(8)])

    async def circuit_open() -> bool:  # polled over HTTP: the router announces nothing to this test
        return bool((await router.get("/v1/status?target=crm"))["targets"][0]["circuit"] == "open")

    await until(circuit_open)

    code, out, err = await cxeb("router", "probe", "crm", "--url", router.url, "--output", "json")
    assert code == 1, err
    failed = json.loads(out)
    assert (failed["attempt"]["outcome"], failed["attempt"]["status"]) == ("error", None)  # connection refused
    assert failed["circuit"] == "open"
    assert failed["circuitReason"].startswith("the probe failed")
    reopened_until = datetime.fromisoformat(failed["circuitUntil"]).timestamp()

    receiver = await start_receiver(
        ReceiverConfig(certs_dir=receiver_certs_dir, port=port, record_path=tmp_path / "up.jsonl")
    )
    try:
        code, _, err = await cxeb("router", "probe", "crm", "--url", router.url)
        assert code == 0, err
        assert "probe of crm succeeded: status 200 in" in err
        assert "the circuit is closed" in err
        first = receiver.records()[0]  # the probe; the rest follow once it closed the circuit
        assert datetime.fromisoformat(first["time"]).timestamp() < reopened_until  # sent now, not when the wait ended
        await until(lambda: len(receiver.records()) == 8)  # the closed circuit lets the rest through
    finally:
        await receiver.stop()

    code, _, err = await cxeb("router", "probe", "witness", "--url", router.url)
    assert code == 1
    assert "the circuit of witness is closed: its deliveries flow, there is nothing to probe" in err
    log = "".join(router.stderr_lines)
    assert "target crm probed" in log
