"""A/B of the delivery path between source trees, alternating, in the same minutes (the machine is shared).

    git archive 4edc9dc src | tar -x -C /tmp/before          # e.g. the commit before a change
    .venv/bin/python benchmarks/bench_delivery_ab.py /tmp/before/src src --pairs 3

For each pair and each tree, a child process (``PYTHONPATH=<tree>``) runs one ``EventRouter`` against
nginx (``receivers.py``): 20,000 events at full speed (deliveries/s, process CPU and event-loop thread CPU
per delivery), then 1,000 events/s offered for 6 s (p99 accept-to-delivered). Only the library's public
pieces that every tree since the first delivery engine has are used, so older trees run unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from receivers import start_receiver
from pydantic import SecretStr
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliverySucceeded, ObserverBus
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.signing import generate_signing_secret
from cxone_eventbridge.ssrf import EgressPolicy
try:
    from cxone_eventbridge.router.queue.sqlite import SQLiteQueue
except ImportError:
    from cxone_eventbridge.router.sqlite_queue import SQLiteQueue
try:
    from cxone_eventbridge import runtime
except ImportError:
    from cxone_eventbridge.router import event_loop as runtime

EVENT = {"eventType": "call.ended", "skill": "billing", "agent": {"id": "a-17", "team": "tier1"}, "durationSeconds": 312}

class Recorder:
    def __init__(self):
        self.latencies, self.delivered, self.changed = [], 0, asyncio.Event()
    def __call__(self, event):
        if isinstance(event, DeliverySucceeded):
            self.delivered += 1
            self.latencies.append(event.end_to_end_s)
            self.changed.set()
    async def wait_for(self, count):
        while self.delivered < count:
            self.changed.clear()
            await self.changed.wait()

def events(prefix, start, count):
    return [{**EVENT, "id": f"{prefix}-{i}", "contactId": f"c-{i:06d}"} for i in range(start, start + count)]

async def phase(db, receiver, name):
    bus, recorder = ObserverBus(), Recorder()
    bus.subscribe(recorder)
    target = IntegrationTarget(name="bench", endpoint=receiver.url + "/hooks/bench",
        signing_secret=SecretStr(generate_signing_secret()), retry_policy=RetryPolicy(max_retries=3, timeout_ms=10_000))
    router = EventRouter(SQLiteQueue(db, synchronous="FULL"), targets=[target], bus=bus,
        options=DispatcherOptions(max_in_flight=64, per_target_in_flight=64),
        egress=EgressPolicy.from_cidrs(["127.0.0.0/8"]), ssl_context=ssl_context_for(str(receiver.certs.ca)))
    await router.start()
    try:
        await router.ingest(events("warm", 0, 64))
        await recorder.wait_for(64)
        recorder.latencies.clear(); recorder.delivered = 0
        if name == "full":
            total, sent = 20_000, 0
            cpu, loop, started = time.process_time(), time.thread_time(), time.perf_counter()
            while sent < total:
                if sent - recorder.delivered >= 1_000:
                    recorder.changed.clear(); await recorder.changed.wait(); continue
                await router.ingest(events("full", sent, 100)); sent += 100
            await recorder.wait_for(total)
            return {"deliveries_per_s": total / (time.perf_counter() - started),
                    "router_cpu_us": (time.process_time() - cpu) / total * 1e6,
                    "loop_cpu_us": (time.thread_time() - loop) / total * 1e6}
        started, sent = time.perf_counter(), 0
        while sent < 6_000:
            delay = started + (sent // 10) * 0.01 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await router.ingest(events("offered", sent, 10)); sent += 10
        await recorder.wait_for(6_000)
        ordered = sorted(recorder.latencies)
        return {"p99_ms_at_1000": ordered[int(0.99 * len(ordered))] * 1000}
    finally:
        await router.stop(deadline_s=5.0)

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        receiver = start_receiver("nginx", __import__("pathlib").Path(tmp) / "certs")
        try:
            result = await phase(os.path.join(tmp, "full.db"), receiver, "full")
            result.update(await phase(os.path.join(tmp, "offered.db"), receiver, "offered"))
        finally:
            receiver.stop()
    result["load_avg_1min"] = os.getloadavg()[0]
    print(json.dumps(result))

runtime.run(main(), tune_gc=True)
"""

KEYS = ("router_cpu_us", "loop_cpu_us", "deliveries_per_s", "p99_ms_at_1000")


def run_tree(tree: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(Path(__file__).parent)], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two src directories: A (before) and B (after)")
    parser.add_argument("--pairs", type=int, default=3)
    arguments = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {tree: [] for tree in arguments.trees}
    for pair in range(arguments.pairs):
        for tree in arguments.trees:
            results[tree].append(run_tree(tree))
            print(f"pair {pair + 1} {tree}: {json.dumps(results[tree][-1])}", flush=True)
    before, after = (results[tree] for tree in arguments.trees)
    for key in KEYS:
        ratios = [b[key] / a[key] for a, b in zip(before, after, strict=True)]
        print(
            f"{key}: A median {statistics.median(r[key] for r in before):.1f}, "
            f"B median {statistics.median(r[key] for r in after):.1f}, "
            f"B/A per pair {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
