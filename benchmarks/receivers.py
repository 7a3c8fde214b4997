"""HTTPS receivers for the delivery benchmarks, each in its own process, so the client's CPU is measured alone.

- ``nginx``: Debian's nginx (``apt-get install -y nginx-light``), one process, answering every POST 200 with
  a small JSON body. It costs about 40 µs per request, so it is never what limits a benchmark.
- ``sandbox``: the project's own receiver (``cxeb sandbox receiver``, uvloop). It costs 150-170 µs per
  request and caps a client at about 5,000 requests/s on this 2-core machine; the benchmark says so when
  it had to use it.

``start_receiver(kind, certs_dir)`` issues the certificates, starts the receiver on a free port of
127.0.0.1 and returns a :class:`Receiver` to stop (and to read the process's CPU time from).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cxone_eventbridge.sandbox.certs import CertPaths, ensure_certificates

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")

# Run as `cxeb sandbox receiver` runs it (uvloop if installed, fewer GCs), without a record file.
SANDBOX_SCRIPT = """
import asyncio, sys
from pathlib import Path
from cxone_eventbridge import runtime
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, start_receiver

async def main():
    receiver = await start_receiver(ReceiverConfig(certs_dir=Path(sys.argv[1]), port=0))
    print(receiver.port, flush=True)
    await asyncio.Event().wait()

runtime.run(main(), tune_gc=True)
"""

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            default_type application/json;
            return 200 '{{"received":true}}';
        }}
    }}
}}
"""


@dataclass
class Receiver:
    kind: str  # "nginx" or "sandbox"
    url: str  # https://127.0.0.1:PORT
    certs: CertPaths
    process: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        """The receiver process's CPU time so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def nginx_path() -> str | None:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"{what} did not listen on port {port} within 10 s")


def start_receiver(kind: str, certs_dir: Path) -> Receiver:
    """Start ``kind`` ("nginx", "sandbox", or "auto": nginx when installed, else the sandbox receiver)."""
    certs = ensure_certificates(certs_dir)
    if kind == "auto":
        kind = "nginx" if nginx_path() else "sandbox"
    if kind == "nginx":
        binary = nginx_path()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install -y nginx-light), or use --receiver sandbox")
        root = certs_dir.parent / "nginx"
        root.mkdir(exist_ok=True)
        port = _free_port()
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=port, cert=certs.cert, key=certs.key))
        process = subprocess.Popen([binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")])
        _wait_listening(port, process, "nginx")
        return Receiver("nginx", f"https://127.0.0.1:{port}", certs, process)
    if kind != "sandbox":
        raise ValueError(f"receiver: {kind!r} is not one of auto, nginx, sandbox")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    process = subprocess.Popen([sys.executable, "-c", SANDBOX_SCRIPT, str(certs_dir)], stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Receiver("sandbox", f"https://127.0.0.1:{port}", certs, process)
