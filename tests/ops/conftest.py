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
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cxone_eventbridge.sandbox.receiver import RunningReceiver

from ..router_serve import CXEB, RouterProcess, start_router

__all__ = ["CXEB", "DEPLOY", "KEY", "RouterFactory", "RouterProcess", "cxeb"]  # what the ops tests import from here

KEY = "ops-ingest-key-0123456789abcdef"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


async def cxeb(*args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run the CLI as a process with the ops ingest key, no colour and ``columns`` wide; exit code, stdout
    and stderr."""
    process = await asyncio.create_subprocess_exec(
        CXEB,
        *args,
        env={**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1", "COLUMNS": str(columns)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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


RouterFactory = Callable[..., Awaitable[RouterProcess]]


@pytest.fixture
async def router_process(tmp_path: Path) -> AsyncIterator[RouterFactory]:
    """Start `cxeb router serve` with the given targets (``[{name, endpoint, ...}]``); SIGTERM at teardown."""
    started: list[RouterProcess] = []

    async def factory(
        targets: list[dict[str, Any]], *, receiver: RunningReceiver, args: tuple[str, ...] = ()
    ) -> RouterProcess:
        (tmp_path / "targets.json").write_text(json.dumps(targets))
        router = await start_router(
            *("--port", "0", "--targets", "targets.json", "--db", "queue.db", "--no-audit-log"),
            *("--ca-bundle", str(receiver.ca_path), "--allow-private", "127.0.0.0/8", *args),
            env={**os.environ, "CXEB_INGEST_KEY": KEY, "NO_COLOR": "1"},
            cwd=tmp_path,
            ingest_key=KEY,
        )
        assert router.url.startswith("http://127.0.0.1:"), router.log
        started.append(router)
        return router

    yield factory
    for router in started:
        await router.close()
