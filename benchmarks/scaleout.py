"""``bench_delivery.py --workers 1,2``: N router processes over one queue, SQLite beside PostgreSQL.

Each worker is a router process of its own (as ``cxeb router serve --workers N`` runs them), with the
benchmark's target on the shared receiver. After every worker has opened its connections (warm-up
deliveries), all start at once: each ingests its share of ``full_speed_events`` while the workers together keep at
most ``full_speed_backlog`` events undelivered, and the row ends when the queue has delivered them all.
Any worker delivers any worker's events (the queue is shared), so both are counted across workers.

A row: durable deliveries/s (all events / wall time), the queue-only cycle for the same backend and
worker count (``bench_queue.py``), the routers' CPU per delivery (all threads of all workers), and for
PostgreSQL the database's CPU per delivery: the backends serving this queue, from /proc (``pg_cpu.py``),
with the server's background processes apart. SQLite has one router per file, so it has a row for one
worker only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import bench_queue
from pg_cpu import ServerCpu

from cxone_eventbridge import runtime
from cxone_eventbridge.observe.events import DeliverySucceeded, ObservedEvent, ObserverBus
from cxone_eventbridge.router.composition import RouterConfig, build_router, sqlite_url
from cxone_eventbridge.router.delivery import ssl_context_for
from cxone_eventbridge.router.dispatcher import DispatcherOptions
from cxone_eventbridge.router.queue.postgres import PostgresQueue

_POLL_S = 0.002


@dataclass(frozen=True)
class WorkerSpec:
    """What one router process of a row needs (picklable: it crosses into a spawned process)."""

    index: int
    queue_url: str
    receiver_url: str
    ca: str
    events: int
    backlog: int
    in_flight: int
    ingest_batch: int
    all_events: int
    warm_events: int


async def _worker(spec: WorkerSpec, counts: Any, ready: Any, go: Any, stop: Any, out: Any) -> None:
    import bench_delivery  # noqa: PLC0415 -- the script beside this module; imported in the worker process only

    delivered, sent = counts
    bus = ObserverBus()
    bus.subscribe(lambda event: _count_delivered(event, delivered, spec.index))
    config = RouterConfig(
        queue_url=spec.queue_url,
        owner=f"bench-w{spec.index}",
        migrate=False,
        dispatcher=DispatcherOptions(max_in_flight=spec.in_flight, per_target_in_flight=spec.in_flight),
        egress=bench_delivery.LOOPBACK,
        ssl_context=ssl_context_for(spec.ca),
    )
    router = build_router(config, targets=[bench_delivery.bench_target(spec.receiver_url)], bus=bus)
    await router.start()
    try:
        prefix = f"w{spec.index}-{uuid.uuid4().hex[:6]}"
        await router.ingest(bench_delivery.make_events(f"{prefix}-warm", 0, spec.in_flight))
        await _until(lambda: sum(delivered[:]) >= spec.warm_events)  # every worker's connections are open
        await asyncio.to_thread(ready.wait)
        await asyncio.to_thread(go.wait)
        cpu = time.process_time()
        mine = 0
        while mine < spec.events:
            # The backlog is counted across workers: any of them delivers any worker's events.
            await _until(lambda: sum(sent[:]) - (sum(delivered[:]) - spec.warm_events) < spec.backlog)
            count = min(spec.ingest_batch, spec.events - mine)
            await router.ingest(bench_delivery.make_events(prefix, mine, count))
            mine += count
            sent[spec.index] = mine
        await _until(lambda: sum(delivered[:]) >= spec.warm_events + spec.all_events)
        out.put(time.process_time() - cpu)
        await asyncio.to_thread(stop.wait)  # the database's CPU is read while this worker's connections live
    finally:
        await router.stop(deadline_s=5.0)


def _count_delivered(event: ObservedEvent, delivered: Any, index: int) -> None:
    if isinstance(event, DeliverySucceeded):
        delivered[index] += 1  # one writer per slot: this worker


async def _until(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds; polled, as the counts it reads live in other processes (no event crosses)."""
    while not condition():  # noqa: ASYNC110 -- see above
        await asyncio.sleep(_POLL_S)


def worker_main(spec: WorkerSpec, counts: Any, ready: Any, go: Any, stop: Any, out: Any) -> None:
    runtime.run(_worker(spec, counts, ready, go, stop, out), tune_gc=True)


async def _prepare(backend: str, postgres_url: str, tmp: Path, workers: int) -> tuple[str, str]:
    """A fresh queue for one row: (URL the routers use, PostgreSQL schema or '')."""
    if backend == "sqlite":
        return sqlite_url(tmp / f"scaleout-{workers}.db"), ""
    schema = f"cxeb_bench_scale_{uuid.uuid4().hex[:8]}"
    async with PostgresQueue(postgres_url, schema=schema, migrate=True):
        pass
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}schema={schema}", schema


async def _drop(postgres_url: str, schema: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def measure_row(settings: Any, receiver: Any, backend: str, workers: int, tmp: Path) -> dict[str, Any]:
    """One (backend, workers) row; ``settings`` is bench_delivery's Settings (``queue`` the PostgreSQL URL)."""
    postgres_url = settings.queue.split("?", 1)[0] if backend == "postgresql" else ""
    queue_url, schema = await _prepare(backend, postgres_url, tmp, workers)
    ctx = multiprocessing.get_context("spawn")
    counts = (ctx.Array("q", workers, lock=False), ctx.Array("q", workers, lock=False))  # delivered, sent
    ready, go, stop, out = ctx.Barrier(workers + 1), ctx.Event(), ctx.Event(), ctx.Queue()
    share = settings.full_speed_events // workers
    specs = [
        WorkerSpec(
            index=i,
            queue_url=queue_url,
            receiver_url=receiver.url,
            ca=str(receiver.certs.ca),
            events=share,
            backlog=settings.full_speed_backlog,
            in_flight=settings.in_flight,
            ingest_batch=settings.ingest_batch,
            all_events=share * workers,
            warm_events=settings.in_flight * workers,
        )
        for i in range(workers)
    ]
    processes = [ctx.Process(target=worker_main, args=(s, counts, ready, go, stop, out)) for s in specs]
    for process in processes:
        process.start()
    try:
        await asyncio.to_thread(ready.wait)
        server = ServerCpu.start()
        started = time.perf_counter()
        go.set()
        router_cpu = sum([await asyncio.to_thread(out.get) for _ in processes])
        wall = time.perf_counter() - started
        db_s = await server.backends_s(postgres_url, f"cxeb-router:{schema}") if schema else None
        aux_s = server.aux_s() if schema else None
    finally:
        stop.set()
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.kill()
        if schema:
            await _drop(postgres_url, schema)
    done = share * workers
    if backend == "sqlite":
        queue_only = await bench_queue.run_sqlite(workers)
    else:
        queue_only = await bench_queue.run_postgres(postgres_url, workers)
    return {
        "backend": backend,
        "workers": workers,
        "deliveries_per_s": round(done / wall, 1),
        "queue_only_per_s": round(queue_only["queue_only_per_s"], 1),
        "router_cpu_us_per_delivery": round(router_cpu / done * 1e6, 1),
        "db_cpu_us_per_delivery": None if db_s is None else round(db_s / done * 1e6, 1),
        "db_aux_cpu_us_per_delivery": None if aux_s is None else round(aux_s / done * 1e6, 1),
        "queue_only_db_cpu_us_per_delivery": queue_only["db_cpu_us_per_delivery"],
        "events": done,
    }


async def measure(settings: Any, receiver: Any, worker_counts: list[int]) -> list[dict[str, Any]]:
    """Every row: SQLite with one worker, then PostgreSQL (when ``settings.queue`` names it) per count."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cxeb-scaleout-") as tmp:
        for workers in worker_counts:
            if workers == 1:
                rows.append(await measure_row(settings, receiver, "sqlite", 1, Path(tmp)))
            if settings.queue != "sqlite":
                rows.append(await measure_row(settings, receiver, "postgresql", workers, Path(tmp)))
    return rows


_MEDIAN_KEYS = (
    "deliveries_per_s",
    "queue_only_per_s",
    "router_cpu_us_per_delivery",
    "db_cpu_us_per_delivery",
    "db_aux_cpu_us_per_delivery",
    "queue_only_db_cpu_us_per_delivery",
)


def combine_runs(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (backend, workers): the median of each figure over the runs, every run's figure kept
    (``runs``), and for PostgreSQL the median over runs of its deliveries/s over the same run's SQLite
    figure (``vs_sqlite``). The machine's speed drifts between runs (identical code measured 5,700-9,300
    deliveries/s an hour apart), so the ratio is taken within a run, where both rows met the same machine."""
    combined = []
    for index, first in enumerate(runs[0]):
        rows = [run[index] for run in runs]
        row = dict(first)
        for key in _MEDIAN_KEYS:
            values = [r[key] for r in rows if r.get(key) is not None]
            row[key] = round(statistics.median(values), 1) if values else None
        if row["backend"] == "postgresql":
            ratios = [
                r["deliveries_per_s"] / other["deliveries_per_s"]
                for run, r in zip(runs, rows, strict=True)
                for other in run
                if other["backend"] == "sqlite"
            ]
            row["vs_sqlite"] = round(statistics.median(ratios), 3) if ratios else None
        row["runs"] = [{key: r[key] for key in ("deliveries_per_s", "router_cpu_us_per_delivery")} for r in rows]
        combined.append(row)
    return combined


def render(rows: list[dict[str, Any]]) -> str:
    runs = len(rows[0].get("runs", ())) if rows else 0
    lines = [
        f"medians of {runs} runs; vs SQLite: the median over runs of the row's deliveries/s over SQLite's in the"
        " same run"
        if runs > 1
        else "one run; vs SQLite: deliveries/s over SQLite's in this run",
        "backend     workers  deliveries/s  vs SQLite  queue-only/s  router µs/delivery  db µs/delivery  (db aux µs)",
    ]
    for row in rows:
        db = row["db_cpu_us_per_delivery"]
        aux = row["db_aux_cpu_us_per_delivery"]
        ratio = row.get("vs_sqlite")
        lines.append(
            f"{row['backend']:<11} {row['workers']:>7}  {row['deliveries_per_s']:>12,.0f}"
            f"  {'-' if ratio is None else f'{ratio:.2f}':>9}"
            f"  {row['queue_only_per_s']:>12,.0f}  {row['router_cpu_us_per_delivery']:>18.1f}"
            f"  {'-' if db is None else f'{db:.1f}':>14}  {'' if aux is None else f'({aux:.1f})'}"
        )
    lines.append(
        "db: the backends serving the queue (/proc); aux: the server's WAL writer, checkpointer, background"
        " writer and autovacuum, shared with anything else the server does. SQLite: one router per file."
    )
    if runs > 1:
        lines.append("each run, deliveries/s (router µs/delivery):")
        for row in rows:
            each = "  ".join(
                f"{r['deliveries_per_s']:,.0f} ({r['router_cpu_us_per_delivery']:.0f})" for r in row["runs"]
            )
            lines.append(f"  {row['backend']:<11} {row['workers']:>2}: {each}")
    return "\n".join(lines)
