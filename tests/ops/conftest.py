"""Operations fixtures: system tools from Debian's packages, and `cxeb router serve` as a real process.

``promtool`` and ``chromium`` come from Debian's ``prometheus`` and ``chromium`` packages. When one is
missing and the tests run as root (as CI does), the fixture installs it with apt-get; otherwise the test
fails with one line saying how to install it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

CXEB = str(Path(sys.executable).with_name("cxeb"))
KEY = "ops-ingest-key-0123456789abcdef"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def system_tool(command: str, package: str) -> str:
    """The path of ``command``; installs Debian's ``package`` when it is missing and we are root."""
    found = shutil.which(command)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get") is not None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", *wait, "install", "-y", "-qq", package], check=True, env=env, capture_output=True)
        found = shutil.which(command)
    if found is None:
        pytest.fail(f"{command} is missing: install Debian's {package} package (as root: apt-get install -y {package})")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's promtool (Debian's prometheus package)."""
    return system_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, driven by Playwright without a browser download."""
    return system_tool("chromium", "chromium")


@dataclass
class RouterProcess:
    """A `cxeb router serve` process on an ephemeral loopback port."""

    url: str
    process: asyncio.subprocess.Process
    stderr_lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    def read_stderr(self) -> None:
        """Keep reading the process's log lines, so that a full pipe never blocks it."""

        async def read() -> None:
            assert self.process.stderr is not None
            async for line in self.process.stderr:
                self.stderr_lines.append(line.decode())

        self._reader = asyncio.create_task(read())

    def client(self) -> httpx.AsyncClient:
        """An HTTP client for the router's API, with the ingest key."""
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)

    async def send(self, events: list[dict[str, Any]]) -> list[str]:
        """Ingest events; their ids once accepted."""
        async with self.client() as client:
            response = await client.post("/v1/events", json=events)
            assert response.status_code == 202, response.text
            ids: list[str] = response.json()["ids"]
            return ids

    async def get(self, path: str) -> Any:
        """GET a JSON route of the router's API."""
        async with self.client() as client:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.json()


RouterFactory = Callable[..., Awaitable[RouterProcess]]


@pytest.fixture
async def router_process(tmp_path: Path) -> AsyncIterator[RouterFactory]:
    """Start `cxeb router serve` with the given targets (``[{name, endpoint, ...}]``); SIGTERM at teardown."""
    started: list[RouterProcess] = []

    async def factory(
        targets: list[dict[str, Any]], *, receiver: RunningReceiver, args: tuple[str, ...] = ()
    ) -> RouterProcess:
        (tmp_path / "targets.json").write_text(json.dumps(targets))
        env = {**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1"}
        process = await asyncio.create_subprocess_exec(
            CXEB,
            *("router", "serve", "--port", "0", "--targets", "targets.json", "--db", "queue.db", "--no-audit-log"),
            *("--ca-bundle", str(receiver.ca_path), "--allow-private", "127.0.0.0/8", *args),
            env=env,
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        async with asyncio.timeout(30):
            banner = (await process.stderr.readline()).decode()
        assert banner.startswith("router listening on http://127.0.0.1:"), banner
        router = RouterProcess(url=banner.split()[3], process=process)
        router.read_stderr()
        started.append(router)
        return router

    yield factory
    for router in started:
        if router.process.returncode is None:
            router.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await router.process.wait()
            except TimeoutError:
                router.process.kill()
                await router.process.wait()
        if router._reader is not None:
            await router._reader
