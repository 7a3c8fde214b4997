"""`cxeb sandbox serve` and `cxeb sandbox receiver` as real processes, and their option errors."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cxone_eventbridge.cli.main import app

pytestmark = pytest.mark.e2e


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from cxone_eventbridge.cli.main import run; run()", *args],
        cwd=cwd,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    while True:
        line = process.stderr.readline()
        if not line:
            raise AssertionError(f"the process exited early: {''.join(lines)}")
        lines.append(line)
        # The banner is printed at once; it ends with the receiver's only export or the server's last one.
        if line.startswith("  export CXONE_") and (args[1] == "receiver" or "CXONE_CLIENT_SECRET" in line):
            return process, lines


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)  # also closes the pipes


def test_serve_prints_credentials_and_exports_and_serves(tmp_path: Path, processes) -> None:
    """serve prints the demo credentials and the env vars, and those credentials get a token."""
    process, lines = _start(["sandbox", "serve", "--port", "0", "--db", str(tmp_path / "s.db")], tmp_path)
    processes.append(process)
    banner = "".join(lines)
    base_url = re.search(r"export CXONE_BASE_URL=(\S+)", banner).group(1)
    client_id = re.search(r"export CXONE_CLIENT_ID=(\S+)", banner).group(1)
    client_secret = re.search(r"export CXONE_CLIENT_SECRET=(\S+)", banner).group(1)
    response = httpx.post(
        f"{base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, client_secret)
    )
    assert response.status_code == 200
    assert (tmp_path / "s.db").exists()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path, processes) -> None:
    """SIGTERM (a service manager's stop) ends serve with exit code 0."""
    process, _ = _start(["sandbox", "serve", "--port", "0"], tmp_path)
    processes.append(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_serve_does_not_print_a_secret_the_user_chose(tmp_path: Path, processes) -> None:
    """With --client-secret the banner names the option instead of echoing the secret."""
    process, lines = _start(
        ["sandbox", "serve", "--port", "0", "--client-id", "mine", "--client-secret", "my-own-secret-value"], tmp_path
    )
    processes.append(process)
    banner = "".join(lines)
    assert "my-own-secret-value" not in banner
    assert "CXONE_CLIENT_ID=mine" in banner


def test_receiver_records_and_stops_cleanly(tmp_path: Path, processes) -> None:
    """receiver writes ca.pem, serves HTTPS, records a POST, and exits 0 on SIGTERM."""
    record = tmp_path / "r.jsonl"
    process, lines = _start(
        ["sandbox", "receiver", "--port", "0", "--certs", "certs", "--record", str(record)], tmp_path
    )
    processes.append(process)
    url = re.search(r"listening on (\S+)", "".join(lines)).group(1)
    context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.pem"))
    assert httpx.post(f"{url}/hook", content=b'{"a":1}', verify=context).status_code == 200
    assert json.loads(record.read_text())["path"] == "/hook"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sandbox", "serve", "--fault-rate", "2"], "fault_rate"),
        (["sandbox", "serve", "--rate-limit", "0"], "rate_limit_per_minute"),
        (["sandbox", "receiver", "--status", "99"], "status"),
        (["sandbox", "receiver", "--secret", "plain-text-secret"], "secret"),
        (["sandbox", "serve", "--allow-private", "127.0.0.0/8", "--allow-private", "not-a-cidr"], "--allow-private"),
    ],
)
def test_invalid_options_exit_2_naming_them(args, message) -> None:
    """Bad options exit 2 with a message naming the option, without echoing a secret."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "plain-text-secret" not in result.output


def test_allow_private_is_named_and_meant_alike_in_sandbox_and_router(tmp_path: Path, processes) -> None:
    """Both take --allow-private CIDR (repeatable); the banner lists the ranges; the old sandbox flag is hidden."""
    helps = {cmd: CliRunner().invoke(app, [cmd, "serve", "--help"]).output for cmd in ("sandbox", "router")}
    for help_text in helps.values():
        assert "--allow-private CIDR" in help_text
        assert "private or loopback range despite the SSRF guard (repeatable)" in " ".join(help_text.split())
    assert "--allow-private-endpoints" not in helps["sandbox"]
    args = ["sandbox", "serve", "--port", "0", "--allow-private", "127.0.0.0/8", "--allow-private", "::1/128"]
    process, lines = _start(args, tmp_path)
    processes.append(process)
    assert "Test calls may reach private addresses in: 127.0.0.0/8, ::1/128" in "".join(lines)


def test_deprecated_allow_private_endpoints_warns_and_admits_every_address(tmp_path: Path, processes) -> None:
    """The old --allow-private-endpoints still works as before (every address) and says what replaces it."""
    process, lines = _start(["sandbox", "serve", "--port", "0", "--allow-private-endpoints"], tmp_path)
    processes.append(process)
    banner = "".join(lines)
    assert "--allow-private-endpoints is deprecated" in banner
    assert "use --allow-private CIDR" in banner
    assert "Test calls may reach private addresses in: 0.0.0.0/0, ::/0" in banner


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    """serve on a port already in use exits 1 with 'cannot listen'."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["sandbox", "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert "cannot listen" in result.output
