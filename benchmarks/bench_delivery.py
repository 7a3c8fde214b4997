"""Delivery benchmark: events through match -> durable queue -> signed HTTPS POST -> ack, on this machine.

Self-contained: issues its own certificates, starts an HTTPS receiver in its own process on a free port
(nginx when installed, else the project's sandbox receiver; ``--receiver``), uses a temporary SQLite file
with the production settings (WAL, synchronous=FULL), and cleans up. ``--json`` prints one JSON object;
``--runs N`` repeats the whole run N times and reports each run and the medians.

One run measures, in this order:
1. the ceiling: the router's own HTTP client (``HttpTransport``, same TLS, same number in flight) POSTing
   signed-size requests as fast as the receiver answers, with its CPU per request; measured before and
   after the router's phases, the higher figure counts;
2. full speed: deliveries/s, accept-to-delivered p50/p99 and the router's CPU per delivery (all threads
   of the process: event loop, HTTP client runtime, queue commit thread; the producer calling ``ingest``
   included) with the producer keeping the queue busy;
3. profile: the same at full speed with every stage metered (``cpu_profile.py``): exclusive CPU per
   delivery by stage;
4. p99 accept-to-delivered at 1,000 events/s offered.

``--workers 1,2`` measures instead, at full speed, one row per (backend, workers): N router processes
over one queue, SQLite (one worker) beside the ``--queue`` PostgreSQL, with the queue-only cycle and
the routers' and the database's CPU per delivery (``scaleout.py``); ``--json`` prints one object a row;
``--runs N`` measures every row N times and reports medians, PostgreSQL's figure against SQLite's in the
same run (``vs_sqlite``).

The structure is meant to be extended: ``Settings`` holds what a run varies, each phase is one function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))  # cpu_profile, receivers: modules beside this script

import cpu_profile
from receivers import Receiver, start_receiver

from cxone_eventbridge import runtime
from cxone_eventbridge.matching import RoutingTable
from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.events import DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import DeliveryClient, RequestTemplate, create_transport, ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.event_router import EventRouter
from cxone_eventbridge.router.http_transport import Answer, parse_endpoint
from cxone_eventbridge.signing import generate_signing_secret
from cxone_eventbridge.ssrf import EgressPolicy

LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8"])
EVENT = {
    "eventType": "call.ended",
    "contactId": "c-000000",
    "skill": "billing",
    "agent": {"id": "a-17", "team": "tier1"},
    "durationSeconds": 312,
}


@dataclass(frozen=True)
class Settings:
    """What one run uses."""

    receiver: str = "auto"  # auto (nginx when installed), nginx, sandbox
    in_flight: int = 64
    synchronous: str = "FULL"
    ceiling_seconds: float = 5.0
    full_speed_events: int = 30_000
    full_speed_backlog: int = 1_000  # accepted-but-undelivered events the producer keeps, so the router never idles
    profile_events: int = 10_000
    offered_rate: int = 1_000
    offered_seconds: float = 6.0
    ingest_batch: int = 100
    queue: str = "sqlite"  # "sqlite" (a temporary file) or a postgresql:// URL (a temporary schema in it)
    archive_days: float = 0.0  # > 0: the event archive and attempt history on (router.archive)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_target(url: str) -> IntegrationTarget:
    return IntegrationTarget(
        name="bench",
        endpoint=url + "/hooks/bench",
        signing_secret=SecretStr(generate_signing_secret()),
        retry_policy=RetryPolicy(max_retries=3, timeout_ms=10_000),
    )


async def measure_ceiling(receiver: Receiver, settings: Settings) -> dict[str, float]:
    """The router's HTTP client alone: ``in_flight`` workers POSTing signed requests as fast as answered."""
    transport = create_transport(
        egress=LOOPBACK, ssl_context=ssl_context_for(str(receiver.certs.ca)), limit=settings.in_flight
    )
    target = bench_target(receiver.url)
    template = RequestTemplate(target)
    endpoint = parse_endpoint(target.endpoint)
    body = json.dumps(EVENT, separators=(",", ":")).encode()
    headers = template.headers("msg_" + "0" * 32, int(time.time()), body)  # what a delivery sends, signed once
    limit = timedelta(seconds=10)
    try:
        await asyncio.gather(*(transport.post(endpoint, headers, body, limit) for _ in range(settings.in_flight)))
        done = 0
        deadline = time.perf_counter() + settings.ceiling_seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                answer = await transport.post(endpoint, headers, body, limit)
                if isinstance(answer, Answer) and answer.status == 200:
                    done += 1

        cpu_started, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(settings.in_flight)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await transport.aclose()
    return {"per_s": done / elapsed, "cpu_us_per_request": cpu / max(done, 1) * 1e6}


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

    def reset(self) -> None:
        self.latencies.clear()
        self.delivered = 0

    async def wait_for(self, count: int) -> None:
        while self.delivered < count:
            self.changed.clear()
            await self.changed.wait()


def make_events(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    return [{**EVENT, "id": f"{prefix}-{i}", "contactId": f"c-{i:06d}"} for i in range(start, start + count)]


async def full_speed(router: EventRouter, recorder: Recorder, settings: Settings, events: int, prefix: str) -> float:
    """Keep ``full_speed_backlog`` events accepted and undelivered until ``events`` are delivered; seconds taken."""
    started = time.perf_counter()
    sent = 0
    while sent < events:
        if sent - recorder.delivered >= settings.full_speed_backlog:
            recorder.changed.clear()
            await recorder.changed.wait()
            continue
        await router.ingest(make_events(prefix, sent, settings.ingest_batch))
        sent += settings.ingest_batch
    await recorder.wait_for(events)
    return time.perf_counter() - started


async def offered_load(router: EventRouter, recorder: Recorder, settings: Settings) -> None:
    """``offered_rate`` events/s in ticks of 10 ms, until all are delivered."""
    tick = 0.01
    per_tick = int(settings.offered_rate * tick)
    total = int(settings.offered_rate * settings.offered_seconds)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        delay = started + (sent // per_tick) * tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await router.ingest(make_events("offered", sent, per_tick))
        sent += per_tick
    await recorder.wait_for(total)


def queue_url(settings: Settings, db: Path, schema: str) -> str:
    """A fresh queue for one phase: a new SQLite file, or a new schema of the PostgreSQL database."""
    if settings.queue == "sqlite":
        return sqlite_url(db)
    separator = "&" if "?" in settings.queue else "?"
    return f"{settings.queue}{separator}schema={schema}"


async def drop_schema(settings: Settings, schema: str) -> None:
    if settings.queue != "sqlite":
        conn = await asyncpg.connect(settings.queue.split("?", 1)[0])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def with_router(db: Path, receiver: Receiver, settings: Settings, phase: str) -> dict[str, Any]:
    """Start a router on a fresh queue, warm its connections, run ``phase``, stop it."""
    schema = f"cxeb_bench_{phase}_{int(time.time())}"
    with ExitStack() as stack:
        meter = metering(stack) if phase == "profile" else None  # before start: its tasks are metered too
        bus = ObserverBus()
        recorder = Recorder()
        bus.subscribe(recorder)
        config = RouterConfig(
            queue_url=queue_url(settings, db, schema),
            owner=f"bench-{phase}",
            migrate=True,
            dispatcher=DispatcherOptions(max_in_flight=settings.in_flight, per_target_in_flight=settings.in_flight),
            egress=LOOPBACK,
            ssl_context=ssl_context_for(str(receiver.certs.ca)),
            sqlite_synchronous="FULL" if settings.synchronous == "FULL" else "NORMAL",
            archive_days=settings.archive_days,
        )
        router = build_router(config, targets=[bench_target(receiver.url)], bus=bus)
        await router.start()
        try:
            await router.ingest(make_events(f"{phase}-warm", 0, settings.in_flight))  # open the connections
            await recorder.wait_for(settings.in_flight)
            recorder.reset()
            if meter is not None:
                return await profiled(router, recorder, settings, meter)
            if phase == "full":
                cpu_started, loop_started = time.process_time(), time.thread_time()
                elapsed = await full_speed(router, recorder, settings, settings.full_speed_events, phase)
                cpu, loop = time.process_time() - cpu_started, time.thread_time() - loop_started
                return {
                    "deliveries_per_s": settings.full_speed_events / elapsed,
                    "router_cpu_us_per_delivery": cpu / settings.full_speed_events * 1e6,
                    "loop_cpu_us_per_delivery": loop / settings.full_speed_events * 1e6,
                    "p50_ms": percentile(recorder.latencies, 0.50) * 1000,
                    "p99_ms": percentile(recorder.latencies, 0.99) * 1000,
                }
            await offered_load(router, recorder, settings)
            return {"p99_ms_at_offered": percentile(recorder.latencies, 0.99) * 1000}
        finally:
            await router.stop(deadline_s=5.0)
            await drop_schema(settings, schema)


def metering(stack: ExitStack) -> cpu_profile.StageMeter:
    """Meter every task of the loop and the stages below (patched on their classes) until ``stack`` closes."""
    meter = cpu_profile.StageMeter()
    stages = [
        (DeliveryClient, "send", meter.async_function, "HTTP request, Python side (pyreqwest calls, answer)"),
        (RequestTemplate, "headers", meter.function, "signing (HMAC) and headers"),
        (ObserverBus, "publish", meter.function, "observers (records published)"),
        (RoutingTable, "match", meter.function, "matching"),
        (EventRouter, "ingest", meter.async_function, "ingest: validate, encode, queue put"),
    ]
    for owner, name, wrap, stage in stages:
        stack.enter_context(cpu_profile.patched(owner, name, lambda f, w=wrap, s=stage: w(s, f)))
    stack.enter_context(cpu_profile.metered_loop(meter))
    return meter


async def profiled(
    router: EventRouter, recorder: Recorder, settings: Settings, meter: cpu_profile.StageMeter
) -> dict[str, Any]:
    """Full speed with every stage metered: exclusive CPU µs per delivery by stage."""
    loop_tid = cpu_profile.loop_thread_id()
    meter.ns.clear()
    threads_before = cpu_profile.thread_cpu_s()
    loop_before = time.thread_time_ns()
    await full_speed(router, recorder, settings, settings.profile_events, "profile")
    loop_ns = time.thread_time_ns() - loop_before
    threads_after = cpu_profile.thread_cpu_s()
    per_delivery = 1e-3 / settings.profile_events  # ns -> µs per delivery
    loop_stages: dict[str, float] = {stage: ns * per_delivery for stage, ns in meter.ns.items()}
    loop_stages[cpu_profile.LOOP_REST] = (loop_ns - sum(meter.ns.values())) * per_delivery
    threads: dict[str, float] = {}
    for key, after in threads_after.items():
        stage = cpu_profile.thread_stage(key, loop_tid)
        if stage != "loop thread":
            used = (after - threads_before.get(key, 0.0)) * 1e6 / settings.profile_events
            threads[stage] = threads.get(stage, 0.0) + used
    return {"loop_stages_us": loop_stages, "thread_stages_us": threads, "loop_us": loop_ns * per_delivery}


async def run_once(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cxeb-bench-") as tmp:
        tmp_path = Path(tmp)
        receiver = start_receiver(settings.receiver, tmp_path / "certs")
        try:
            receiver_cpu = receiver.cpu_s()
            ceiling_first = await measure_ceiling(receiver, settings)
            full = await with_router(tmp_path / "full.db", receiver, settings, "full")
            profile = await with_router(tmp_path / "profile.db", receiver, settings, "profile")
            offered = await with_router(tmp_path / "offered.db", receiver, settings, "offered")
            ceiling_second = await measure_ceiling(receiver, settings)
            receiver_cpu = receiver.cpu_s() - receiver_cpu
        finally:
            receiver.stop()
    ceiling = max(ceiling_first, ceiling_second, key=lambda c: c["per_s"])
    # Metering inflates the loop thread's stages (two clock reads per task step); they are scaled to the
    # loop thread's CPU per delivery measured without metering in the full-speed phase. Other threads are
    # not metered, so their figures stand as measured.
    scale = full["loop_cpu_us_per_delivery"] / profile["loop_us"]
    stages = {stage: us * scale for stage, us in profile["loop_stages_us"].items()} | profile["thread_stages_us"]
    return {
        "deliveries_per_s": round(full["deliveries_per_s"], 1),
        "router_cpu_us_per_delivery": round(full["router_cpu_us_per_delivery"], 1),
        "loop_cpu_us_per_delivery": round(full["loop_cpu_us_per_delivery"], 1),
        "ceiling_per_s": round(ceiling["per_s"], 1),
        "client_cpu_us_per_request": round(ceiling["cpu_us_per_request"], 1),
        "ratio": round(full["deliveries_per_s"] / ceiling["per_s"], 3),
        "p50_ms": round(full["p50_ms"], 2),
        "p99_ms": round(full["p99_ms"], 2),
        "p99_ms_at_1000": round(offered["p99_ms_at_offered"], 2),
        "stages_us_per_delivery": {stage: round(us, 1) for stage, us in sorted(stages.items(), key=lambda i: -i[1])},
        "profile_metering_scale": round(scale, 3),
        "receiver": receiver.kind,
        "receiver_cpu_s": round(receiver_cpu, 2),
        "load_avg_1min": round(_load_average(), 2),
        "synchronous": settings.synchronous,
        "backend": "sqlite" if settings.queue == "sqlite" else "postgresql",
        "in_flight": settings.in_flight,
        "event_loop": runtime.loop_name(runtime.loop_factory()),
    }


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


HEADLINE = (
    "deliveries_per_s",
    "router_cpu_us_per_delivery",
    "loop_cpu_us_per_delivery",
    "ceiling_per_s",
    "client_cpu_us_per_request",
    "ratio",
    "p50_ms",
    "p99_ms",
    "p99_ms_at_1000",
)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians over runs (one run: that run), with every run kept."""
    summary: dict[str, Any] = {key: round(statistics.median(run[key] for run in runs), 3) for key in HEADLINE}
    stages: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for stage, us in run["stages_us_per_delivery"].items():
            stages[stage].append(us)
    medians = {stage: round(statistics.median(v), 1) for stage, v in stages.items()}
    summary["stages_us_per_delivery"] = dict(sorted(medians.items(), key=lambda item: -item[1]))
    for key in ("receiver", "synchronous", "in_flight", "event_loop", "backend"):
        summary[key] = runs[0][key]
    summary["load_avg_1min"] = [run["load_avg_1min"] for run in runs]
    summary["runs"] = runs
    return summary


def render(summary: dict[str, Any]) -> str:
    runs = summary["runs"]
    median = f" (median of {len(runs)} runs)" if len(runs) > 1 else ""
    rows = [
        ("durable deliveries/s (match -> queue -> HTTPS -> ack)", f"{summary['deliveries_per_s']:,.0f}"),
        ("router CPU µs per delivery (all threads; goal <= 150)", f"{summary['router_cpu_us_per_delivery']:.0f}"),
        ("  of which the event-loop thread", f"{summary['loop_cpu_us_per_delivery']:.0f}"),
        ("raw client ceiling/s (same client, receiver, TLS, in flight)", f"{summary['ceiling_per_s']:,.0f}"),
        ("raw client CPU µs per request", f"{summary['client_cpu_us_per_request']:.0f}"),
        ("ratio deliveries / ceiling", f"{summary['ratio']:.2f}"),
        ("accept-to-delivered p50 at full speed (ms)", f"{summary['p50_ms']:.1f}"),
        ("accept-to-delivered p99 at full speed (ms)", f"{summary['p99_ms']:.1f}"),
        ("accept-to-delivered p99 at 1,000/s offered (ms, goal < 50)", f"{summary['p99_ms_at_1000']:.1f}"),
        (
            "settings",
            f"queue={summary['backend']}, receiver={summary['receiver']}, synchronous={summary['synchronous']}, "
            f"in_flight={summary['in_flight']}, loop={summary['event_loop']}",
        ),
        ("load average (1 min) per run", ", ".join(f"{x:.2f}" for x in summary["load_avg_1min"])),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if len(runs) > 1:
        lines[0] += median
        lines.append("")
        lines.append("run  deliveries/s  router µs/delivery  ceiling/s  client µs/request  p99 ms at 1,000/s")
        for index, run in enumerate(runs, 1):
            lines.append(
                f"{index:>3}  {run['deliveries_per_s']:>12,.0f}  {run['router_cpu_us_per_delivery']:>18.0f}"
                f"  {run['ceiling_per_s']:>9,.0f}  {run['client_cpu_us_per_request']:>17.0f}"
                f"  {run['p99_ms_at_1000']:>17.1f}"
            )
    stages = summary["stages_us_per_delivery"]
    total = sum(stages.values())
    lines.append("")
    lines.append(
        f"CPU per delivery by stage (total {total:.0f} µs; loop-thread stages metered in a profiled phase and"
        " scaled to the unprofiled loop CPU):"
    )
    stage_width = max(len(stage) for stage in stages)
    for stage, us in stages.items():
        lines.append(f"  {stage:<{stage_width}}  {us:>6.1f} µs  {us / total:>5.1%}")
    return "\n".join(lines)


def scale_out(settings: Settings, workers: str, *, as_json: bool, runs: int = 1) -> None:
    """``--workers``: one row per (backend, workers), printed as a table or one JSON object per line."""
    import scaleout  # noqa: PLC0415 -- only this mode needs it

    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        sys.exit(f"--workers: comma-separated positive integers, got {workers!r}")

    async def rows() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="cxeb-bench-") as tmp:
            receiver = start_receiver(settings.receiver, Path(tmp) / "certs")
            try:
                # Every run measures every row, so that each run's rows meet the machine at the same speed.
                return scaleout.combine_runs([await scaleout.measure(settings, receiver, counts) for _ in range(runs)])
            finally:
                receiver.stop()

    measured = runtime.run(rows(), tune_gc=True)
    load = _load_average()
    for row in measured:
        row["load_avg_1min"] = load
    if as_json:
        print("\n".join(json.dumps(row) for row in measured))
    else:
        print(scaleout.render(measured))
        print(f"load average (1 min) at the end: {load:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole run; medians are reported")
    parser.add_argument("--receiver", choices=["auto", "nginx", "sandbox"], default="auto")
    parser.add_argument(
        "--queue", default="sqlite", help="sqlite (default) or a postgresql:// URL (a temporary schema in it)"
    )
    parser.add_argument("--archive-days", type=float, default=0.0, help="run with the event archive on (history too)")
    parser.add_argument(
        "--workers",
        help="comma-separated router process counts (e.g. 1,2): one row per (backend, workers), SQLite beside"
        " the --queue PostgreSQL; full speed only (see scaleout.py)",
    )
    arguments = parser.parse_args()
    if arguments.runs < 1:
        sys.exit(f"--runs: a positive number of runs, got {arguments.runs}")
    settings = Settings(receiver=arguments.receiver, queue=arguments.queue, archive_days=arguments.archive_days)
    if arguments.workers:
        scale_out(settings, arguments.workers, as_json=arguments.json, runs=arguments.runs)
        return

    async def all_runs() -> dict[str, Any]:
        runs = [await run_once(settings) for _ in range(arguments.runs)]
        return summarize(runs)

    summary = runtime.run(all_runs(), tune_gc=True)
    summary["settings"] = asdict(settings)
    print(json.dumps(summary) if arguments.json else render(summary))


if __name__ == "__main__":
    main()
