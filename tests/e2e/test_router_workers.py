"""`cxeb router migrate` and `cxeb router serve --workers 2` on PostgreSQL as real processes: two routers, one port."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CXEB = str(Path(sys.executable).with_name("cxeb"))
KEY = "e2e-ingest-key-0123456789abcdef"


async def cxeb(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        CXEB, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_migrate_then_two_workers_share_a_port_and_drain_on_sigterm(
    https_receiver: Callable[..., Awaitable[RunningReceiver]], tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    """`router migrate` creates the schema; `serve --workers 2` starts two routers on one port that deliver
    everything sent to either; SIGTERM to the parent drains both and exits 0."""
    receiver = await https_receiver()
    (tmp_path / "targets.yaml").write_text(f"- name: crm\n  endpoint: {receiver.url}/hooks/crm\n")
    env = {**os.environ, "CXEB_INGEST_KEY": KEY, "CXEB_QUEUE_URL": f"{postgres_dsn}?schema={pg_schema}"}
    env["NO_COLOR"] = "1"
    code, out = await cxeb("router", "serve", "--targets", "targets.yaml", "--workers", "2", env=env, cwd=tmp_path)
    assert code == 1, out  # not migrated yet: refused with the command to run
    assert "cxeb router migrate" in out
    code, out = await cxeb("router", "migrate", env=env, cwd=tmp_path)
    assert code == 0, out
    assert "the postgresql queue's schema is at version" in out

    port = free_port()
    server = await asyncio.create_subprocess_exec(
        CXEB,
        *("router", "serve", "--targets", "targets.yaml", "--workers", "2", "--port", str(port)),
        *("--ca-bundle", str(receiver.ca_path), "--allow-private", "127.0.0.0/8", "--no-audit-log"),
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        async with asyncio.timeout(60):
            banners = [(await server.stderr.readline()).decode() for _ in range(2)]
        assert all(b.startswith(f"router listening on http://127.0.0.1:{port}") for b in banners), banners
        for n in range(40):  # a connection each: the kernel spreads them over the two workers
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answer = await client.post(
                    "/v1/events",
                    json=[{"id": f"e{n}-{i}"} for i in range(5)],
                    headers={"Authorization": f"Bearer {KEY}"},
                )
                assert answer.status_code == 202, answer.text
        async with asyncio.timeout(30):
            while receiver.request_count < 200:  # noqa: ASYNC110 -- the receiver has no event to wait on
                await asyncio.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await server.wait()
    assert server.returncode == 0
    assert receiver.request_count == 200


async def test_workers_need_a_postgresql_queue(tmp_path: Path) -> None:
    """--workers above 1 on a SQLite file is refused with exit code 2 (one router per file)."""
    (tmp_path / "t.yaml").write_text("- name: crm\n  endpoint: https://example.com/hooks\n")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("CXEB_QUEUE_URL", None)
    code, out = await cxeb("router", "serve", "--targets", "t.yaml", "--workers", "2", env=env, cwd=tmp_path)
    assert code == 2
    assert "needs a PostgreSQL --queue" in out
