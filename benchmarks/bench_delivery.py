"""Delivery benchmark: events through match -> durable queue -> signed HTTPS POST -> ack, on this machine.

Self-contained: issues its own certificates, starts the sandbox HTTPS receiver in its own process on a
free port, uses a temporary SQLite file with the production settings (WAL, synchronous=FULL), and
cleans up. No arguments needed; ``--json`` prints one JSON object instead of the table.

Measures, in one run:
1. the ceiling: raw aiohttp POSTs against the same receiver, same TLS, same number in flight, measured
   before and after the router's phases; the higher figure counts (a burst of load from other processes
   during one 5 s window would otherwise flatter the ratio);
2. full speed: deliveries/s and accept-to-delivered p50/p99 with the producer keeping the queue busy;
3. p99 accept-to-delivered at 1,000 events/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from cxone_eventbridge import runtime
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.sqlite_queue import SQLiteQueue
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.signing import generate_signing_secret
from cxone_eventbridge.ssrf import EgressPolicy

IN_FLIGHT = 64
SYNCHRONOUS = "FULL"
CEILING_SECONDS = 5.0
FULL_SPEED_EVENTS = 30_000
FULL_SPEED_BACKLOG = 1_000  # accepted-but-undelivered events the producer keeps, so the router never idles
OFFERED_RATE = 1_000
OFFERED_SECONDS = 6.0
INGEST_BATCH = 100

# The receiver runs in its own process, run as `cxeb sandbox receiver` runs it (uvloop if installed, fewer GCs).
RECEIVER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from cxone_eventbridge import runtime
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, start_receiver

async def main():
    receiver = await start_receiver(ReceiverConfig(certs_dir=Path(sys.argv[1]), port=0))
    print(receiver.port, flush=True)
    await asyncio.Event().wait()

runtime.run(main(), tune_gc=True)
"""

EVENT = {
    "eventType": "call.ended",
    "contactId": "c-000000",
    "skill": "billing",
    "agent": {"id": "a-17", "team": "tier1"},
    "durationSeconds": 312,
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_receiver_process(certs_dir: Path) -> tuple[subprocess.Popen[str], int]:
    ensure_certificates(certs_dir)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", RECEIVER_SCRIPT, str(certs_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


async def measure_ceiling(url: str, context: ssl.SSLContext, body: bytes) -> float:
    """Raw aiohttp: IN_FLIGHT workers POSTing as fast as the receiver answers."""
    connector = aiohttp.TCPConnector(ssl=context, limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Content-Type": "application/json"}
        for _ in range(IN_FLIGHT):  # warm the connections (TLS handshakes are not the steady state)
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
        done = 0
        deadline = time.perf_counter() + CEILING_SECONDS

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return done / (time.perf_counter() - started)


class Recorder:
    """Collects accept-to-delivered latencies from DeliverySucceeded records."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.delivered = 0
        self.changed = asyncio.Event()

    def __call__(self, event: ObservedEvent) -> None:
        if isinstance(event, DeliverySucceeded):
            self.delivered += 1
            self.latencies.append(event.end_to_end_s)
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while self.delivered < count:
            self.changed.clear()
            await self.changed.wait()


def make_events(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    return [{**EVENT, "id": f"{prefix}-{i}", "contactId": f"c-{i:06d}"} for i in range(start, start + count)]


async def run_router(db: Path, url: str, ca: Path, *, phase: str) -> dict[str, float]:
    target = IntegrationTarget(
        name="bench",
        endpoint=url + "/hooks/bench",
        signing_secret=SecretStr(generate_signing_secret()),
        retry_policy=RetryPolicy(max_retries=3, timeout_ms=10_000),
    )
    bus = ObserverBus()
    recorder = Recorder()
    bus.subscribe(recorder)
    options = DispatcherOptions(max_in_flight=IN_FLIGHT, per_target_in_flight=IN_FLIGHT)
    router = EventRouter(
        SQLiteQueue(db, synchronous=SYNCHRONOUS),
        targets=[target],
        bus=bus,
        options=options,
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=ssl_context_for(str(ca)),
    )
    await router.start()
    try:
        # Warm-up: open the connections.
        await router.ingest(make_events(f"{phase}-warm", 0, IN_FLIGHT))
        await recorder.wait_for(IN_FLIGHT)
        recorder.latencies.clear()
        recorder.delivered = 0
        if phase == "full":
            started = time.perf_counter()
            sent = 0
            while sent < FULL_SPEED_EVENTS:
                if sent - recorder.delivered >= FULL_SPEED_BACKLOG:
                    recorder.changed.clear()
                    await recorder.changed.wait()
                    continue
                await router.ingest(make_events(phase, sent, INGEST_BATCH))
                sent += INGEST_BATCH
            await recorder.wait_for(FULL_SPEED_EVENTS)
            elapsed = time.perf_counter() - started
            return {
                "deliveries_per_s": FULL_SPEED_EVENTS / elapsed,
                "p50_ms": percentile(recorder.latencies, 0.50) * 1000,
                "p99_ms": percentile(recorder.latencies, 0.99) * 1000,
            }
        # Offered load: OFFERED_RATE events/s in ticks of 10 ms.
        tick = 0.01
        per_tick = int(OFFERED_RATE * tick)
        total = int(OFFERED_RATE * OFFERED_SECONDS)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            due = started + (sent // per_tick) * tick
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await router.ingest(make_events(phase, sent, per_tick))
            sent += per_tick
        await recorder.wait_for(total)
        return {"p99_ms_at_1000": percentile(recorder.latencies, 0.99) * 1000}
    finally:
        await router.stop(deadline_s=5.0)


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cxeb-bench-") as tmp:
        tmp_path = Path(tmp)
        process, port = start_receiver_process(tmp_path / "certs")
        try:
            url = f"https://127.0.0.1:{port}"
            ca = tmp_path / "certs" / "ca.pem"
            body = json.dumps(EVENT, separators=(",", ":")).encode()
            ceiling_url, ceiling_tls = url + "/hooks/bench", ssl_context_for(str(ca))
            ceiling_first = await measure_ceiling(ceiling_url, ceiling_tls, body)
            full = await run_router(tmp_path / "full.db", url, ca, phase="full")
            offered = await run_router(tmp_path / "offered.db", url, ca, phase="offered")
            ceiling = max(ceiling_first, await measure_ceiling(ceiling_url, ceiling_tls, body))
        finally:
            process.terminate()
            process.wait(timeout=10)
    return {
        "deliveries_per_s": round(full["deliveries_per_s"], 1),
        "ceiling_per_s": round(ceiling, 1),
        "ratio": round(full["deliveries_per_s"] / ceiling, 3),
        "p50_ms": round(full["p50_ms"], 2),
        "p99_ms": round(full["p99_ms"], 2),
        "p99_ms_at_1000": round(offered["p99_ms_at_1000"], 2),
        "synchronous": SYNCHRONOUS,
        "in_flight": IN_FLIGHT,
        "event_loop": runtime.loop_name(runtime.loop_factory()),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        ("durable deliveries/s (match -> queue -> HTTPS -> ack)", f"{result['deliveries_per_s']:,.0f}"),
        ("raw aiohttp ceiling/s (same receiver, TLS, in flight)", f"{result['ceiling_per_s']:,.0f}"),
        ("ratio (goal >= 0.5)", f"{result['ratio']:.2f}"),
        ("accept-to-delivered p50 at full speed (ms)", f"{result['p50_ms']:.1f}"),
        ("accept-to-delivered p99 at full speed (ms)", f"{result['p99_ms']:.1f}"),
        (f"accept-to-delivered p99 at {OFFERED_RATE:,}/s offered (ms, goal < 50)", f"{result['p99_ms_at_1000']:.1f}"),
        (
            "settings",
            f"synchronous={result['synchronous']}, in_flight={result['in_flight']}, loop={result['event_loop']}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    outcome = runtime.run(main(), tune_gc=True)
    print(json.dumps(outcome) if arguments.json else render(outcome))
