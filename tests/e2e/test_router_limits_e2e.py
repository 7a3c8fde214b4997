"""End to end: `cxeb router serve --host "[::1]" --max-connections --idle-timeout` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from cxone_eventbridge.router.connection_cap import REFUSAL

pytestmark = pytest.mark.e2e

CXEB = str(Path(sys.executable).with_name("cxeb"))


async def test_serve_binds_bracketed_ipv6_caps_connections_and_closes_idle_ones(tmp_path: Path) -> None:
    """[::1] binds; with --max-connections 1 a second connection gets 503 and the log says so; idle ones are closed."""
    (tmp_path / "t.yaml").write_text("name: crm\nendpoint: https://hooks.example.com/crm\n")
    server = await asyncio.create_subprocess_exec(
        CXEB,
        *("router", "serve", "--host", "[::1]", "--port", "0", "--targets", "t.yaml", "--db", "q.db"),
        *("--no-audit-log", "--max-connections", "1", "--idle-timeout", "0.5", "--body-timeout", "5"),
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        async with asyncio.timeout(30):
            banner = (await server.stderr.readline()).decode()
        assert banner.startswith("router listening on http://[::1]:"), banner
        port = int(banner.split()[3].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then idle on keep-alive
        await reader.readuntil(b'{"status": "ok"}')
        second, second_writer = await asyncio.open_connection("::1", port)
        async with asyncio.timeout(10):
            assert await second.read() == REFUSAL
            logged = (await server.stderr.readline()).decode()
            assert "connection cap reached: 1 connections open" in logged
            assert await reader.read() == b""  # the idle connection is closed after --idle-timeout
        writer.close()
        second_writer.close()
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await server.wait() == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
