"""What a user expects of any CLI: --version, NO_COLOR, shell completion, JSON logs with ids, HTTPS_PROXY."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from cxone_eventbridge import __version__
from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.cli.logs import JsonLinesFormatter
from cxone_eventbridge.cli.main import app
from cxone_eventbridge.observe.delivery_log import log_delivery_outcomes
from cxone_eventbridge.observe.events import DeliveryDeadLettered, DeliveryRetryScheduled
from cxone_eventbridge.sandbox.certs import ensure_certificates
from cxone_eventbridge.sandbox.server import uvicorn_config

CXEB = Path(sys.executable).parent / "cxeb"  # the installed console script, as a user runs it


def _cxeb(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``cxeb`` in a clean environment plus ``env``."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(CXEB), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    """`cxeb --version` prints the installed version and exits 0."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cxeb {__version__}"


def test_no_color_removes_colour_codes_even_on_a_forced_terminal() -> None:
    """With FORCE_COLOR the error is red (escape codes); adding NO_COLOR prints the same text without them."""
    coloured = _cxeb("targets", "list", FORCE_COLOR="1")
    plain = _cxeb("targets", "list", FORCE_COLOR="1", NO_COLOR="1")
    assert coloured.returncode == plain.returncode == 2
    assert "\x1b[31m" in coloured.stderr
    assert "\x1b[" not in plain.stderr
    assert plain.stderr.startswith("error: CXONE_BASE_URL is not set")


def test_shell_completion_is_offered_and_completes_commands_and_options() -> None:
    """--install-completion/--show-completion exist, and bash completion completes `de` and `demo --ev`."""
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "--install-completion" in help_text
    assert "--show-completion" in help_text
    command = _cxeb(_CXEB_COMPLETE="complete_bash", COMP_WORDS="cxeb de", COMP_CWORD="1")
    assert command.stdout.split() == ["demo"]
    option = _cxeb(_CXEB_COMPLETE="complete_bash", COMP_WORDS="cxeb demo --ev", COMP_CWORD="2")
    assert option.stdout.split() == ["--events"]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The package logger writing JSON lines to a buffer at INFO; its previous set-up restored afterwards."""
    logger = logging.getLogger("cxone_eventbridge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonLinesFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield buffer
    logger.handlers[:], logger.level, logger.propagate = saved


def test_json_logs_of_delivery_outcomes_carry_event_and_delivery_ids(json_log: io.StringIO) -> None:
    """A retry and a dead letter logged through the observer are JSON lines with event_id and delivery_id fields."""
    log_delivery_outcomes(
        DeliveryRetryScheduled(
            event_id="evt-1", delivery_id="msg_1", target="Orders", attempt=1, delay_s=1.0, reason="status 503", at=0.0
        )
    )
    log_delivery_outcomes(
        DeliveryDeadLettered(
            event_id="evt-2",
            delivery_id="msg_2",
            target="Orders",
            attempts=3,
            reason="retries_exhausted",
            last_status=503,
            at=0.0,
        )
    )
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [(line["level"], line["event_id"], line["delivery_id"], line["target"]) for line in lines] == [
        ("info", "evt-1", "msg_1", "Orders"),
        ("warning", "evt-2", "msg_2", "Orders"),
    ]
    assert "retried in 1.00s" in lines[0]["message"]


# -- HTTPS_PROXY --------------------------------------------------------------------------------------


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records each tunnel's target."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()


@pytest.fixture
async def connect_proxy() -> AsyncIterator[ConnectProxy]:
    """A running CONNECT proxy, stopped at teardown."""
    proxy = ConnectProxy()
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def tls_sandbox_url(sandbox: Any, receiver_certs_dir: Path) -> Iterator[str]:
    """The shared sandbox app served again over HTTPS (the receiver's loopback certificate), in a thread."""
    certs = ensure_certificates(receiver_certs_dir)
    config = uvicorn_config(sandbox.app, host="127.0.0.1", port=0)
    config.ssl_certfile, config.ssl_keyfile = str(certs.cert), str(certs.key)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tls-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the TLS sandbox did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_control_plane_client_goes_through_https_proxy(
    sandbox: Any,
    tls_sandbox_url: str,
    receiver_certs_dir: Path,
    connect_proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With HTTPS_PROXY set, the token request and the API call tunnel through the proxy (CONNECT) and succeed."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{connect_proxy.port}")
    settings = sandbox.settings(
        base_url=tls_sandbox_url,
        token_url=f"{tls_sandbox_url}/oauth/token",
        ca_bundle=receiver_certs_dir / "ca.pem",
    )
    async with CXoneClient.from_settings(settings) as client:
        targets = await client.targets.list_all()
    assert targets == []
    host_port = tls_sandbox_url.removeprefix("https://")
    assert connect_proxy.tunnels
    assert set(connect_proxy.tunnels) == {host_port}
