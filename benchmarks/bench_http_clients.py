"""The HTTP client evaluation behind docs/delivery.md ("Choosing the HTTP client"): checks and CPU per request.

For each candidate (aiohttp as the router used it, pyreqwest through the router's own ``HttpTransport``,
pycurl's multi interface with the asyncio glue it needs, written here), against real loopback HTTPS:

- checks: the body and headers arrive exactly; a certificate from an unknown CA is refused; a 302 is
  not followed; a per-request timeout fires and the client is usable afterwards; cancelling a request
  ends it at once and the client is usable afterwards; **pinning**: a request to ``https://localhost``
  is sent to an address we choose (127.0.0.2 here, where a second receiver listens) while the
  certificate is still checked for ``localhost``.
- CPU: ``--in-flight`` requests in flight (64), keep-alive, TLS, a 125-byte JSON body with the headers a
  delivery carries, ``--seconds`` per measurement, ``--rounds`` interleaved rounds, against nginx
  (started here; ``apt-get install -y nginx-light``) so the receiver is never the bottleneck. Process
  CPU (all threads) per request; the median over rounds and the ratio to aiohttp within each round.

pycurl is not a project dependency: ``pip install pycurl`` to include it (it is skipped otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

try:
    import pycurl
except ImportError:  # not a project dependency: measured when installed
    pycurl = None

sys.path.insert(0, str(Path(__file__).parent))

from receivers import start_receiver

from cxone_eventbridge import runtime
from cxone_eventbridge.router.delivery import create_transport, ssl_context_for
from cxone_eventbridge.router.http_transport import Answer, parse_endpoint
from cxone_eventbridge.sandbox.certs import CertPaths, ensure_certificates
from cxone_eventbridge.sandbox.receiver import server_ssl_context
from cxone_eventbridge.ssrf import EgressPolicy

BODY = b'{"eventType":"call.ended","contactId":"c-000000","skill":"billing","agent":{"id":"a-17","team":"tier1"},"durationSeconds":312}'
HEADERS = {
    "content-type": "application/json",
    "authorization": "Bearer token-123",
    "webhook-id": "msg_" + "0" * 32,
    "webhook-timestamp": "1700000000",
    "webhook-signature": "v1," + "A" * 44,
}
LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8"])

# A client under test: post(url, pin_address or None, time limit s) -> (status, body received by us)
Post = Callable[[str, str | None, float], Awaitable[int]]


class Candidate:
    name = ""

    async def open(self, ca: Path, in_flight: int) -> None: ...
    async def post(self, url: str, pin: str | None, limit_s: float) -> int: ...
    async def close(self) -> None: ...


class AiohttpCandidate(Candidate):
    name = "aiohttp (as the router used it)"

    async def open(self, ca: Path, in_flight: int) -> None:
        self._ca, self._in_flight = ca, in_flight
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}

    def _session(self, pin: str | None) -> aiohttp.ClientSession:
        if pin not in self._sessions:
            resolver: Any = None
            if pin is not None:
                resolver = _PinnedResolver(pin)  # the router's CheckedResolver returned the checked address
            connector = aiohttp.TCPConnector(
                ssl=ssl_context_for(str(self._ca)), limit=self._in_flight, resolver=resolver, ttl_dns_cache=10
            )
            self._sessions[pin] = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False
            )
        return self._sessions[pin]

    async def post(self, url: str, pin: str | None, limit_s: float) -> int:
        timeout = aiohttp.ClientTimeout(total=limit_s)
        async with self._session(pin).post(
            url, data=BODY, headers=HEADERS, allow_redirects=False, timeout=timeout
        ) as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        await asyncio.sleep(0)


class _PinnedResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, address: str) -> None:
        self._address = address

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[Any]:
        return [
            {
                "hostname": host,
                "host": self._address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


class PyreqwestCandidate(Candidate):
    name = "pyreqwest (the router's HttpTransport)"

    async def open(self, ca: Path, in_flight: int) -> None:
        self._ca, self._in_flight = ca, in_flight
        self._transports: dict[str | None, Any] = {}
        self._endpoints: dict[str, Any] = {}

    async def post(self, url: str, pin: str | None, limit_s: float) -> int:
        if pin not in self._transports:

            async def resolver(host: str, port: int, address: str | None = pin) -> list[str]:
                return [address or "127.0.0.1"]

            self._transports[pin] = create_transport(
                egress=LOOPBACK, ssl_context=ssl_context_for(str(self._ca)), limit=self._in_flight, resolver=resolver
            )
        endpoint = self._endpoints.get(url) or self._endpoints.setdefault(url, parse_endpoint(url))
        answer = await self._transports[pin].post(endpoint, HEADERS, BODY, timedelta(seconds=limit_s))
        if not isinstance(answer, Answer):
            raise ConnectionError(answer.message)
        return answer.status

    async def close(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()


class PycurlCandidate(Candidate):
    """pycurl's multi interface driven by the asyncio loop: the glue a project would have to own."""

    name = "pycurl (CurlMulti + asyncio glue)"

    async def open(self, ca: Path, in_flight: int) -> None:
        assert pycurl is not None
        self.pycurl = pycurl
        self._ca = str(ca)
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, in_flight)
        self._futures: dict[Any, asyncio.Future[None]] = {}
        self._idle: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None
        self._headers = [f"{k}: {v}" for k, v in HEADERS.items()] + ["Expect:"]

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        pycurl = self.pycurl
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)
        if what in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if what in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)

    def _on_timer(self, ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms >= 0:
            self._timer = self._loop.call_later(ms / 1000, self._act, self.pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        self._multi.socket_action(fd, events)
        while True:
            queued, ok, failed = self._multi.info_read()
            for easy in ok:
                self._finish(easy, None)
            for easy, errno, message in failed:
                self._finish(easy, ConnectionError(f"curl error {errno}: {message}"))
            if not queued:
                return

    def _finish(self, easy: Any, error: Exception | None) -> None:
        future = self._futures.pop(easy, None)
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    async def post(self, url: str, pin: str | None, limit_s: float) -> int:
        pycurl = self.pycurl
        easy = self._idle.pop() if self._idle else pycurl.Curl()
        easy.setopt(pycurl.URL, url)
        easy.setopt(pycurl.POSTFIELDS, BODY)
        easy.setopt(pycurl.HTTPHEADER, self._headers)
        easy.setopt(pycurl.TIMEOUT_MS, int(limit_s * 1000))
        easy.setopt(pycurl.CAINFO, self._ca)  # replaces the system bundle: custom + system needs a merged file
        easy.setopt(pycurl.FOLLOWLOCATION, 0)
        easy.setopt(pycurl.WRITEFUNCTION, len)  # read and drop the answer (bounding it needs a counter here)
        port = url.split(":")[2].split("/", maxsplit=1)[0]
        host = url.split("/")[2].split(":", maxsplit=1)[0]
        easy.setopt(pycurl.CONNECT_TO, [f"{host}:{port}:{pin}:{port}"] if pin else [])
        future = self._loop.create_future()
        self._futures[easy] = future
        self._multi.add_handle(easy)
        self._act(pycurl.SOCKET_TIMEOUT, 0)
        try:
            await future
        finally:
            self._futures.pop(easy, None)
            self._multi.remove_handle(easy)  # also what cancellation needs: the transfer is dropped
            self._idle.append(easy)
        return int(easy.getinfo(pycurl.RESPONSE_CODE))

    async def close(self) -> None:
        for easy in self._idle:
            easy.close()
        self._multi.close()
        if self._timer is not None:
            self._timer.cancel()


CANDIDATES: list[type[Candidate]] = [AiohttpCandidate, PyreqwestCandidate, PycurlCandidate]


class CheckServer:
    """An HTTPS server for the checks: records bodies and headers, redirects, hangs on request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, dict[str, str]]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.path, body, {k.lower(): v for k, v in request.headers.items()}))
        if request.path == "/redirect":
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        if request.path == "/hang":
            await self.release.wait()
        return web.Response(text="{}")

    async def start(self, certs: CertPaths, host: str, port: int = 0) -> int:
        self.runner = web.ServerRunner(web.Server(self.handle, access_log=None), handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port, ssl_context=server_ssl_context(certs)).start()
        return int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        self.release.set()
        await self.runner.cleanup()


async def checks(candidate_type: type[Candidate], certs: CertPaths, other_ca: Path) -> dict[str, bool]:
    primary, pinned_to = CheckServer(), CheckServer()
    port = await primary.start(certs, "127.0.0.1")
    await pinned_to.start(certs, "127.0.0.2", port)
    base = f"https://127.0.0.1:{port}"
    result: dict[str, bool] = {}
    candidate = candidate_type()
    await candidate.open(certs.ca, 8)
    try:
        status = await candidate.post(base + "/x", None, 5)
        _, body, headers = primary.seen[-1]
        result["body and headers exact"] = (
            status == 200 and body == BODY and all(headers.get(k) == v for k, v in HEADERS.items())
        )
        result["302 not followed"] = await candidate.post(base + "/redirect", None, 5) == 302 and all(
            path != "/elsewhere" for path, _, _ in primary.seen
        )
        started = time.perf_counter()
        try:
            await candidate.post(base + "/hang", None, 0.2)
            timed_out = False
        except Exception:
            timed_out = time.perf_counter() - started < 1.0
        result["timeout fires, client usable"] = timed_out and await candidate.post(base + "/x", None, 5) == 200
        task = asyncio.create_task(candidate.post(base + "/hang", None, 10))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        cancel_ms = (time.perf_counter() - started) * 1000
        result["cancel <= 1 ms, client usable"] = cancel_ms <= 1.0 and await candidate.post(base + "/x", None, 5) == 200
        before = len(pinned_to.seen)
        status = await candidate.post(f"https://localhost:{port}/x", "127.0.0.2", 5)
        result["pinned address, cert checked for the name"] = status == 200 and len(pinned_to.seen) == before + 1
    finally:
        await candidate.close()
    strict = candidate_type()
    await strict.open(other_ca, 8)
    try:
        await strict.post(base + "/x", None, 5)
        result["unknown CA refused"] = False
    except Exception:
        result["unknown CA refused"] = True
    finally:
        await strict.close()
        await primary.stop()
        await pinned_to.stop()
    return result


async def cpu_per_request(candidate: Candidate, url: str, in_flight: int, seconds: float) -> tuple[float, float]:
    """(requests/s, process CPU µs per request) with ``in_flight`` workers for ``seconds``."""
    await asyncio.gather(*(candidate.post(url, None, 10) for _ in range(in_flight)))  # warm the connections
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await candidate.post(url, None, 10) == 200:
                done += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - started), (time.process_time() - cpu) / max(done, 1) * 1e6


def available() -> list[type[Candidate]]:
    return [candidate for candidate in CANDIDATES if candidate is not PycurlCandidate or pycurl is not None]


async def main(arguments: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cxeb-clients-") as tmp:
        tmp_path = Path(tmp)
        certs = ensure_certificates(tmp_path / "certs")
        other_ca = ensure_certificates(tmp_path / "other").ca
        candidates = available()
        report: dict[str, Any] = {"checks": {}, "rounds": [], "load_avg_1min": []}
        for candidate_type in candidates:
            report["checks"][candidate_type.name] = await checks(candidate_type, certs, other_ca)
        receiver = start_receiver("nginx", tmp_path / "certs")
        try:
            url = receiver.url + "/hooks/bench"
            for _ in range(arguments.rounds):
                report["load_avg_1min"].append(os.getloadavg()[0])
                this_round = {}
                for candidate_type in candidates:
                    candidate = candidate_type()
                    await candidate.open(receiver.certs.ca, arguments.in_flight)
                    try:
                        this_round[candidate_type.name] = await cpu_per_request(
                            candidate, url, arguments.in_flight, arguments.seconds
                        )
                    finally:
                        await candidate.close()
                report["rounds"].append(this_round)
        finally:
            receiver.stop()
    baseline = AiohttpCandidate.name
    report["summary"] = {
        name: {
            "requests_per_s": round(statistics.median(r[name][0] for r in report["rounds"])),
            "cpu_us_per_request": round(statistics.median(r[name][1] for r in report["rounds"]), 1),
            "ratio_to_aiohttp": [round(r[baseline][1] / r[name][1], 2) for r in report["rounds"]],
        }
        for name in report["rounds"][0]
    }
    return report


def render(report: dict[str, Any]) -> str:
    lines = ["Checks (against loopback HTTPS servers):"]
    for name, result in report["checks"].items():
        passed = [check for check, ok in result.items() if ok]
        failed = [check for check, ok in result.items() if not ok]
        lines.append(
            f"  {name}: {len(passed)}/{len(result)} passed" + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
    rounds = len(report["rounds"])
    lines.append("")
    lines.append(
        f"CPU per request against nginx (median of {rounds} interleaved rounds; load {report['load_avg_1min']}):"
    )
    for name, row in report["summary"].items():
        ratios = ", ".join(f"{x:.2f}" for x in row["ratio_to_aiohttp"])
        lines.append(
            f"  {name:<40} {row['cpu_us_per_request']:>7.1f} µs  {row['requests_per_s']:>7,} req/s"
            f"  aiohttp/this per round: {ratios}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=64)
    outcome = runtime.run(main(parser.parse_args()), tune_gc=True)
    print(json.dumps(outcome) if parser.parse_args().json else render(outcome))
