"""The queue-only cycle per backend: put + lease + ack, no HTTP. Deliveries per second and CPU per delivery.

One cycle per worker: put a batch of events with one target each (one call, one transaction), lease the
batch, ack each delivery (the backend groups concurrent acks). ``--workers 1,2`` runs that many cycles
concurrently: coroutines on one queue object in one process for SQLite (one router owns a file), and
separate processes, each with its own queue object, for PostgreSQL (as separate routers). CPU is measured
for the benchmark's own process(es) (``client``) and, for PostgreSQL, for the server's backends serving
this benchmark's queue (``db``, from /proc, see ``pg_cpu.py``) and apart for the server's background
processes (``aux``: WAL writer, checkpointer, ...; shared with whatever else the server does). Each cycle
runs on the router's own runtime (``runtime.run``: uvloop, fewer garbage collections), as it does in a
router.

    .venv/bin/python benchmarks/bench_queue.py                                # SQLite, and PostgreSQL at the
    .venv/bin/python benchmarks/bench_queue.py --postgres postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_queue.py --json                         # one JSON object per row
    .venv/bin/python benchmarks/bench_queue.py --drivers                      # asyncpg vs psycopg 3, raw SQL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # pg_cpu: a module beside this script

import asyncpg
from pg_cpu import ServerCpu

from cxone_eventbridge import runtime
from cxone_eventbridge.router.queue import DeliveryQueue, QueuedEvent
from cxone_eventbridge.router.queue.postgres import PostgresQueue
from cxone_eventbridge.router.queue.sqlite import SQLiteQueue

DEFAULT_DSN = os.environ.get("CXEB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 128
SECONDS = 5.0
BODY = b'{"eventType":"call.ended","tenant":"t-123","agent":{"id":"a-42"},"durationS":371}'


async def cycle_loop(queue: DeliveryQueue, worker: int, deadline: float) -> int:
    done = 0
    n = 0
    while time.perf_counter() < deadline:
        # Unique ids made cheaply (one uuid and one clock reading a batch): the cycle measures the queue.
        batch, accepted_at = uuid.uuid4().hex, time.time()
        events = [QueuedEvent(f"w{worker}-{batch}-{i}", BODY, 5, ("crm",), accepted_at) for i in range(BATCH)]
        n += 1
        await queue.put(events)
        leased = await queue.lease({"crm": BATCH}, limit=BATCH, lease_s=30)
        await asyncio.gather(*(queue.ack(d, status=200) for d in leased))
        done += len(leased)
    return done


async def run_sqlite(workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteQueue(Path(tmp) / "bench.db") as queue:
            start_cpu, start = time.process_time(), time.perf_counter()
            deadline = start + SECONDS
            counts = await asyncio.gather(*(cycle_loop(queue, w, deadline) for w in range(workers)))
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    done = sum(counts)
    return {
        "backend": "sqlite",
        "workers": workers,
        "queue_only_per_s": done / wall,
        "client_cpu_us_per_delivery": cpu / done * 1e6,
        "db_cpu_us_per_delivery": None,
        "db_aux_cpu_us_per_delivery": None,
    }


def _postgres_worker(dsn: str, schema: str, worker: int, deadline: float, out: Any, stop: Any) -> None:
    async def main() -> None:
        async with PostgresQueue(dsn, schema=schema, owner=f"bench-{worker}") as queue:
            cpu = time.process_time()
            done = await cycle_loop(queue, worker, deadline)
            out.put((done, time.process_time() - cpu))
            await asyncio.to_thread(stop.wait)  # the server's CPU is read while these connections live

    runtime.run(main(), tune_gc=True)


async def run_postgres(dsn: str, workers: int) -> dict[str, Any]:
    schema = f"cxeb_bench_{uuid.uuid4().hex[:8]}"
    async with PostgresQueue(dsn, schema=schema, migrate=True):
        pass
    try:
        ctx = multiprocessing.get_context("fork")
        out: Any = ctx.Queue()
        stop = ctx.Event()
        server, start = ServerCpu.start(), time.perf_counter()
        deadline = start + SECONDS + 1.0  # the processes' start-up is inside the window, not inside the rate
        procs = [
            ctx.Process(target=_postgres_worker, args=(dsn, schema, w, deadline, out, stop)) for w in range(workers)
        ]
        for p in procs:
            p.start()
        results = [await asyncio.to_thread(out.get) for _ in procs]
        wall = time.perf_counter() - start
        db_cpu = await server.backends_s(dsn, f"cxeb-router:{schema}")
        aux_cpu = server.aux_s()
        stop.set()
        for p in procs:
            p.join()
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
    done = sum(r[0] for r in results)
    return {
        "backend": "postgresql",
        "workers": workers,
        "queue_only_per_s": done / wall,
        "client_cpu_us_per_delivery": sum(r[1] for r in results) / done * 1e6,
        "db_cpu_us_per_delivery": db_cpu / done * 1e6,
        "db_aux_cpu_us_per_delivery": aux_cpu / done * 1e6,
    }


async def compare_drivers(dsn: str, rounds: int = 300) -> list[dict[str, Any]]:
    """The same three statements per cycle (put 128 with unnest, lease 128 with FOR UPDATE SKIP LOCKED and a
    token, ack with = ANY) through asyncpg and through psycopg 3: client CPU per delivery."""
    import psycopg  # noqa: PLC0415 -- optional: only this comparison needs it (pip install 'psycopg[binary]')

    setup = (
        "CREATE TEMP TABLE q (id bigserial PRIMARY KEY, body bytea, state int2 DEFAULT 0, token text)",
        "CREATE INDEX ON q (id) WHERE state = 0",
    )
    put = "INSERT INTO q (body) SELECT unnest($1::bytea[])"
    lease = (
        "UPDATE q SET state = 1, token = $1 WHERE id IN (SELECT id FROM q WHERE state = 0 ORDER BY id LIMIT $2"
        " FOR UPDATE SKIP LOCKED) RETURNING id, body"
    )
    ack = "UPDATE q SET state = 2 WHERE id = ANY($1::bigint[]) AND token = $2"
    rows: list[dict[str, Any]] = []
    conn = await asyncpg.connect(dsn)
    for statement in setup:
        await conn.execute(statement)
    cpu = time.process_time()
    for _ in range(rounds):
        token = uuid.uuid4().hex
        await conn.execute(put, [BODY] * BATCH)
        leased = await conn.fetch(lease, token, BATCH)
        await conn.execute(ack, [r[0] for r in leased], token)
    rows.append(
        {
            "driver": f"asyncpg {asyncpg.__version__}",
            "client_cpu_us_per_delivery": (time.process_time() - cpu) / (rounds * BATCH) * 1e6,
        }
    )
    await conn.close()
    pconn = await psycopg.AsyncConnection.connect(dsn.replace("postgresql://", "postgresql://", 1), autocommit=True)
    for statement in setup:
        await pconn.execute(statement)
    pput, plase, pack = (s.replace("$1", "%s").replace("$2", "%s") for s in (put, lease, ack))
    cpu = time.process_time()
    for _ in range(rounds):
        token = uuid.uuid4().hex
        await pconn.execute(pput, ([BODY] * BATCH,), prepare=True)
        cur = await pconn.execute(plase, (token, BATCH), prepare=True)
        leased_p = await cur.fetchall()
        await pconn.execute(pack, ([r[0] for r in leased_p], token), prepare=True)
    rows.append(
        {
            "driver": f"psycopg {psycopg.__version__}",
            "client_cpu_us_per_delivery": (time.process_time() - cpu) / (rounds * BATCH) * 1e6,
        }
    )
    await pconn.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_DSN, help="PostgreSQL DSN ('' to skip PostgreSQL)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    parser.add_argument("--drivers", action="store_true", help="compare asyncpg and psycopg 3 instead")
    args = parser.parse_args()
    if args.drivers:
        for row in asyncio.run(compare_drivers(args.postgres)):
            print(
                json.dumps(row)
                if args.json
                else f"{row['driver']:<20} {row['client_cpu_us_per_delivery']:7.1f} µs/delivery"
            )
        return 0
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        rows.append(runtime.run(run_sqlite(workers), tune_gc=True))
        if args.postgres:
            rows.append(runtime.run(run_postgres(args.postgres, workers), tune_gc=True))
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            db, aux = row["db_cpu_us_per_delivery"], row["db_aux_cpu_us_per_delivery"]
            print(
                f"{row['backend']:<11} workers={row['workers']}  {row['queue_only_per_s']:>9,.0f} deliveries/s"
                f"  client {row['client_cpu_us_per_delivery']:6.1f} µs  db {'-' if db is None else f'{db:6.1f} µs'}"
                f"{'' if aux is None else f'  (aux {aux:.1f} µs)'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
