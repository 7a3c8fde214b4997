"""Does a large ingest body stall the router? /healthz latency while 16 MiB bodies are POSTed.

Starts a router (HTTP API over an EventRouter on a temporary SQLite queue, one target that matches
nothing delivered) in a child process, then, from this process, POSTs each body below while polling
``GET /healthz`` back to back, and prints per body: the POST's status and duration, how many health
checks were answered meanwhile, and their median and worst latency. No arguments; ``--json`` prints JSON.

Bodies (each 16 MiB, the default request limit):
- ``ndjson-empty-objects``: 5.6 million ``{}`` lines (refused: too many events);
- ``array-of-numbers``: one array of 8.4 million zeros (refused: too many events);
- ``ndjson-10k-events``: 10,000 events of 1.6 KiB each (accepted: parsed, matched and committed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from cxone_eventbridge import runtime
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.events import ObserverBus
from cxone_eventbridge.observe.metrics import RouterMetrics
from cxone_eventbridge.observe.status import StatusTracker
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.http_api import RouterAPI, ServiceConfig
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue

SIXTEEN_MIB = 16 * 2**20


def bodies() -> dict[str, tuple[bytes, str]]:
    """The bodies to POST, by name, with their content types."""
    pad = "x" * 1_600
    events = "\n".join(json.dumps({"eventType": "bench.stall", "n": n, "pad": pad}) for n in range(10_000))
    return {
        "ndjson-empty-objects": (b"{}\n" * (SIXTEEN_MIB // 3), "application/x-ndjson"),
        "array-of-numbers": (b"[" + b"0," * (SIXTEEN_MIB // 2 - 2) + b"0]", "application/json"),
        "ndjson-10k-events": (events.encode(), "application/x-ndjson"),
    }


def serve(directory: str, port_out: Connection) -> None:
    """The router, in the child process: reports its port, then serves until killed."""

    async def main() -> None:
        bus = ObserverBus()
        target = IntegrationTarget(
            name="never",
            endpoint="https://example.com/hook",
            event_filters=[{"field": "eventType", "operator": "equals", "value": "nothing.matches"}],
        )
        router = EventRouter(SQLiteQueue(Path(directory) / "queue.db"), targets=[target], bus=bus)
        await router.start()
        api = RouterAPI(
            router, ServiceConfig(host="127.0.0.1", port=0), bus=bus, metrics=RouterMetrics(), status=StatusTracker()
        )
        await api.start()
        port_out.send(api.port)
        await asyncio.Event().wait()

    runtime.run(main(), tune_gc=True)  # as `cxeb router serve` runs


def post(port: int, body: bytes, content_type: str) -> tuple[int, float]:
    """POST ``body`` with a blocking client (run in a thread: its sends never hold up the poller's loop)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/v1/events", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - started


async def measure(port: int, body: bytes, content_type: str) -> dict[str, Any]:
    """POST ``body`` while polling /healthz; the POST's outcome and the health checks' latencies."""
    latencies: list[float] = []
    posting = asyncio.create_task(asyncio.to_thread(post, port, body, content_type))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        while not posting.done():
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
    status, took = await posting
    return {
        "status": status,
        "post_s": round(took, 3),
        "healthz_answered": len(latencies),
        "healthz_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "healthz_max_ms": round(max(latencies) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(target=serve, args=(directory, send), daemon=True)
        child.start()
        try:
            port = receive.recv()
            results = {name: asyncio.run(measure(port, body, kind)) for name, (body, kind) in bodies().items()}
        finally:
            child.kill()
            child.join()
    if options.json:
        print(json.dumps(results))
        return
    print(f"{'body (16 MiB)':<24} {'status':>6} {'POST s':>8} {'/healthz n':>10} {'p50 ms':>8} {'max ms':>9}")
    for name, row in results.items():
        print(
            f"{name:<24} {row['status']:>6} {row['post_s']:>8} {row['healthz_answered']:>10} "
            f"{row['healthz_p50_ms']!s:>8} {row['healthz_max_ms']!s:>9}"
        )


if __name__ == "__main__":
    main()
