"""End to end: `cxeb router serve --host "[::1]" --max-connections --idle-timeout` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from cxone_eventbridge.router.connection_cap import REFUSAL

from ..router_serve import serving
from ..waiting import HANG_GUARD_S

pytestmark = pytest.mark.e2e


async def test_serve_binds_bracketed_ipv6_caps_connections_and_closes_idle_ones(tmp_path: Path) -> None:
    """[::1] binds; with --max-connections 1 a second connection gets 503 and the log says so; idle ones are closed."""
    (tmp_path / "t.yaml").write_text("name: crm\nendpoint: https://hooks.example.com/crm\n")
    async with serving(
        *("--host", "[::1]", "--port", "0", "--targets", "t.yaml", "--db", "q.db"),
        *("--no-audit-log", "--max-connections", "1", "--idle-timeout", "0.5", "--body-timeout", "5"),
        env={**os.environ, "NO_COLOR": "1"},
        cwd=tmp_path,
    ) as server:
        assert server.url.startswith("http://[::1]:"), server.log
        port = int(server.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("::1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then idle on keep-alive
        await reader.readuntil(b'{"status": "ok"}')
        second, second_writer = await asyncio.open_connection("::1", port)
        async with asyncio.timeout(HANG_GUARD_S):
            assert await second.read() == REFUSAL
            assert await reader.read() == b""  # the idle connection is closed after --idle-timeout
        await server.log_line("connection cap reached: 1 connections open")
        writer.close()
        second_writer.close()
        assert await server.stop(signal.SIGTERM) == 0, server.log
