"""The data plane's HTTP client: pyreqwest (Rust reqwest, rustls) with every connection pinned to a checked address.

Why pyreqwest: a delivery's HTTPS request cost about 250 µs of CPU with aiohttp and about 115 µs with
pyreqwest (docs/delivery.md, "Choosing the HTTP client"), and the request was most of a delivery's cost.

SSRF guard. Before anything else, the URL's host as written and the host the client will connect to (read
by the client's own parser) must be the same canonical host (:func:`cxone_eventbridge.ssrf.destination_refusal`:
``https://2130706433/`` is 127.0.0.1 to reqwest, and is refused as a non-canonical spelling), and an IP
literal must pass the egress policy. A DNS name is checked when it is resolved, address by address.

SSRF pinning. reqwest has no resolver hook, only a static ``resolve(name, address)`` override fixed when a
client is built. So each destination host name gets its own client (:class:`_Pin`), built with the one
address that :func:`cxone_eventbridge.ssrf.resolve_and_check` approved: the connection can go nowhere
else, while SNI and the certificate check still use the real host name. The name is resolved and checked
again every ``dns_ttl_s``; when its answer no longer contains the pinned address, a new client is pinned
to an approved address and the old one is closed once its requests are done; when the answer contains a
refused address, the host is refused. IP literals need no resolver: one shared client serves them, after
the literal was checked.

Redirects are not followed, no proxy is taken from the environment, no cookies are kept, answers are not
decompressed, and at most :data:`MAX_RESPONSE_BYTES` of an answer are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from pyreqwest import exceptions as reqwest_errors
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url
from pyreqwest.response import ResponseBodyReader

from cxone_eventbridge.exceptions import EgressDeniedError
from cxone_eventbridge.ssrf import (
    EgressPolicy,
    IPAddress,
    Resolver,
    destination_refusal,
    resolve_and_check,
    system_resolver,
)

MAX_RESPONSE_BYTES = 64 * 1024  # read (then drop) at most this much of an answer
DNS_TTL_S = 10.0  # a host's checked address is reused this long, so no lookup runs per request
POOL_IDLE_S = 90.0  # idle keep-alive connections are closed after this
CLOSE_SETTLE_S = 0.05  # see HttpTransport.aclose


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target URL as the HTTP client reads it: the host it will connect to, normalised, and the port."""

    written: str  # the URL as configured
    url: Url
    host: str  # IDNA-encoded name, or the IP address without brackets
    port: int
    literal: IPAddress | None  # the address when the host is an IP literal


def parse_endpoint(url: str) -> Endpoint:
    """Parse ``url`` with the HTTP client's own parser; ValueError when it is not an http(s) URL with a host."""
    try:
        parsed = Url(url)
    except ValueError as exc:
        raise ValueError(f"endpoint {url!r} is not a URL") from exc
    host = parsed.host_str
    port = parsed.port_or_known_default
    if parsed.scheme not in ("http", "https") or not host or port is None:
        raise ValueError(f"endpoint {url!r} is not an http(s) URL with a host")
    literal: IPAddress | None = None
    if parsed.domain is None:  # the parser found an IPv4 or IPv6 address (in whatever notation it was written)
        literal = ipaddress.ip_address(host.strip("[]"))
        host = str(literal)
    return Endpoint(written=url, url=parsed, host=host, port=port, literal=literal)


@dataclass(frozen=True, slots=True)
class Answer:
    """The receiver answered: its status and ``Retry-After`` header (and its body, when asked to keep it)."""

    status: int
    retry_after: str | None
    body: bytes = b""


class FailureKind(StrEnum):
    REFUSED = "refused"  # the egress policy refused the destination; nothing was sent
    TIMEOUT = "timeout"
    TLS = "tls"
    CONNECTION = "connection"  # refused, reset, closed early, name did not resolve


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer: why, in words free of secrets (no header, no body, no query string)."""

    kind: FailureKind
    message: str


def extra_trust_roots(context: ssl.SSLContext | None) -> list[bytes]:
    """The CA certificates (DER) that ``context`` trusts beyond the system's, e.g. a local receiver's CA.

    The client always trusts the system's CAs itself; from the ``ssl.SSLContext`` the rest of the project
    builds (:func:`cxone_eventbridge.router.delivery.ssl_context_for`) it takes only the extra ones. A
    context that does not verify certificates and host names is refused: the data plane always verifies.
    """
    if context is None:
        return []
    if context.verify_mode is not ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("ssl_context: deliveries always verify the certificate and the host name")
    system = {bytes(der) for der in ssl.create_default_context().get_ca_certs(binary_form=True)}
    return [bytes(der) for der in context.get_ca_certs(binary_form=True) if bytes(der) not in system]


@dataclass(eq=False, slots=True)
class _Pin:
    """One client whose connections all go to ``address``, the checked address of one host name."""

    client: Client
    address: str
    expires_at: float
    in_flight: int = 0
    retired: bool = False


@dataclass(slots=True)
class _Host:
    pin: _Pin | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HttpTransport:
    """Sends POSTs over pinned, kept-alive connections; one per router, used from one event loop."""

    def __init__(
        self,
        *,
        egress: EgressPolicy,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = 256,
        resolver: Resolver = system_resolver,
        dns_ttl_s: float = DNS_TTL_S,
        user_agent: str = "cxone-eventbridge",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._egress = egress
        self._roots = extra_trust_roots(ssl_context)
        self._limit = limit
        self._resolver = resolver
        self._dns_ttl_s = dns_ttl_s
        self._user_agent = user_agent
        self._clock = clock
        self._literal: Client | None = None  # for IP-literal endpoints, which never meet a resolver
        self._literal_lock = asyncio.Lock()
        self._refusals: dict[str, str | None] = {}  # by endpoint URL: why refused before any lookup, or None
        self._hosts: dict[tuple[str, int], _Host] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._clients_built = 0

    @property
    def clients_built(self) -> int:
        """How many HTTP clients (one per pinned address, one for IP literals) this transport has built.

        Public because it is the observable sign of the SSRF guard and the pinning working: an endpoint
        refused before any lookup builds none, and a host's client is rebuilt only when its address changes.
        """
        return self._clients_built

    async def _build(self, pin_to: tuple[str, str, int] | None) -> Client:
        """A new client (pinned to ``pin_to`` = (host, address, port) when given), built off the event loop.

        Building loads the system's CA store: about 12 ms of CPU, with the event loop stalled for as long
        when it was built there (once per host and per DNS change). pyreqwest has no way to share one
        loaded store between clients, and pinning needs a client per address, so the build runs in a
        worker thread instead while the loop goes on delivering.
        """
        builder = (
            ClientBuilder()
            .follow_redirects(False)
            .no_proxy()
            .default_cookie_store(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .referer(False)
            .http1_lower_case_headers()  # webhook-id etc. exactly as the Standard Webhooks spec spells them
            .user_agent(self._user_agent)
            .max_connections(self._limit)  # in-flight requests; the dispatcher's max_in_flight bounds them too
            .pool_max_idle_per_host(self._limit)
            .pool_idle_timeout(timedelta(seconds=POOL_IDLE_S))
        )
        for der in self._roots:
            builder = builder.add_root_certificate_der(der)
        if pin_to is not None:
            builder = builder.resolve(*pin_to)
        self._clients_built += 1
        client = await asyncio.to_thread(builder.build)
        if self._closed:  # closed while this one was being built: nobody would close it
            await client.close()
            raise RuntimeError("the HTTP transport is closed")
        return client

    async def post(
        self,
        endpoint: Endpoint,
        headers: Mapping[str, str],
        body: bytes,
        time_limit: timedelta,
        *,
        keep_body: bool = False,
    ) -> Answer | Failure:
        """One POST; never raises for a network outcome, only returns it.

        ``keep_body`` keeps up to :data:`MAX_RESPONSE_BYTES` of the answer (a token endpoint's JSON);
        deliveries drop it.
        """
        if self._closed:
            raise RuntimeError("the HTTP transport is closed")
        refused = self._refusal(endpoint)
        if refused is not None:
            return Failure(FailureKind.REFUSED, refused)
        if endpoint.literal is not None:
            literal = self._literal
            if literal is None:
                async with self._literal_lock:  # one build for all the attempts that find none
                    if self._literal is None:
                        self._literal = await self._build(None)
                    literal = self._literal
            return await _send(literal, endpoint, headers, body, time_limit, keep_body=keep_body)
        pin = await self._pin_for(endpoint)
        if isinstance(pin, Failure):
            return pin
        pin.in_flight += 1
        try:
            return await _send(pin.client, endpoint, headers, body, time_limit, keep_body=keep_body)
        finally:
            pin.in_flight -= 1
            if pin.retired and pin.in_flight == 0:
                self._close_later(pin.client)

    def _refusal(self, endpoint: Endpoint) -> str | None:
        """Why ``endpoint`` is refused before any lookup: a host written in a spelling that another parser
        could read differently, or an IP literal the policy refuses. Cached: the policy is fixed."""
        if endpoint.written not in self._refusals:
            written = urlsplit(endpoint.written).hostname or ""
            self._refusals[endpoint.written] = destination_refusal(written, endpoint.host, self._egress)
        return self._refusals[endpoint.written]

    async def _pin_for(self, endpoint: Endpoint) -> _Pin | Failure:
        key = (endpoint.host, endpoint.port)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        pin = host.pin
        if pin is not None and self._clock() < pin.expires_at:
            return pin
        async with host.lock:  # one lookup for all the attempts that find the pin expired at once
            pin = host.pin
            if pin is not None and self._clock() < pin.expires_at:
                return pin
            try:
                addresses = await resolve_and_check(endpoint.host, endpoint.port, self._egress, self._resolver)
            except EgressDeniedError as exc:
                if isinstance(exc.__cause__, OSError):  # did not resolve: transient, retried, not a refusal
                    return Failure(FailureKind.CONNECTION, f"connection error: {exc}")
                self._retire(host)  # the name now leads somewhere refused: keep no connection to it
                return Failure(FailureKind.REFUSED, str(exc))
            if pin is not None and pin.address in addresses:
                pin.expires_at = self._clock() + self._dns_ttl_s  # same place: keep its warm connections
                return pin
            self._retire(host)
            address = addresses[0].split("%", 1)[0]
            host.pin = _Pin(await self._build((endpoint.host, address, endpoint.port)), address, 0.0)
            host.pin.expires_at = self._clock() + self._dns_ttl_s
            return host.pin

    def _retire(self, host: _Host) -> None:
        pin, host.pin = host.pin, None
        if pin is not None:
            pin.retired = True
            if pin.in_flight == 0:
                self._close_later(pin.client)

    def _close_later(self, client: Client) -> None:
        task = asyncio.get_running_loop().create_task(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every client and wait until their connections are gone; running requests fail."""
        self._closed = True
        clients = [self._literal] if self._literal is not None else []
        clients += [host.pin.client for host in self._hosts.values() if host.pin is not None]
        self._literal = None
        self._hosts.clear()
        had_clients = bool(clients or self._closing)
        await asyncio.gather(*(client.close() for client in clients), *self._closing)
        if not had_clients:
            return  # nothing was built: no connection to wait for
        # The connections go only when the last reference to a client does, and then on the client's own
        # runtime thread: drop ours now and give that thread a moment. Without it, a receiver stopped right
        # after saw the connections still open (measured: all 8 open when close() returned, gone 10 ms later).
        # The same moment keeps the process from aborting at exit: if the interpreter is already finalizing
        # when the runtime thread drops its last Python references, it dies in "PyGILState_Release" (about
        # every second short run measured here; 10 ms was always enough in 45 runs, 50 ms leaves a margin).
        clients.clear()
        await asyncio.sleep(CLOSE_SETTLE_S)


async def _send(
    client: Client,
    endpoint: Endpoint,
    headers: Mapping[str, str],
    body: bytes,
    time_limit: timedelta,
    *,
    keep_body: bool = False,
) -> Answer | Failure:
    request = (
        client.post(endpoint.url)
        .headers(headers)
        .body_bytes(body)
        .timeout(time_limit)
        .streamed_read_buffer_limit(MAX_RESPONSE_BYTES)
        .build_streamed()
    )
    try:
        async with request as response:
            answer = Answer(response.status, response.get_header("retry-after"))
            kept = await _drain(response.body_reader, keep=keep_body)
            if keep_body:
                answer = Answer(answer.status, answer.retry_after, kept)
    except reqwest_errors.RequestTimeoutError:
        return Failure(FailureKind.TIMEOUT, f"timeout after {time_limit.total_seconds() * 1000:.0f} ms")
    except reqwest_errors.RequestError as exc:
        return _failure(exc, endpoint)
    return answer


async def _drain(reader: ResponseBodyReader, *, keep: bool = False) -> bytes:
    """Read at most MAX_RESPONSE_BYTES of the answer (the usual small one is already buffered); the bytes
    read when ``keep``, else nothing."""
    remaining = MAX_RESPONSE_BYTES
    kept: list[bytes] = []
    while remaining > 0:
        chunk = await reader.read(remaining)
        if not chunk:
            break
        if keep:
            kept.append(bytes(chunk))
        remaining -= len(chunk)
    return b"".join(kept)


def _failure(exc: reqwest_errors.RequestError, endpoint: Endpoint) -> Failure:
    """A short, secret-free description: the innermost cause names what went wrong (no URL, no header)."""
    causes = exc.details.get("causes") or []
    reason = (causes[-1]["message"] if causes else exc.message).replace(str(endpoint.url), "the endpoint")
    lowered = reason.lower()
    if "certificate" in lowered or "tls" in lowered or "handshake" in lowered:
        return Failure(FailureKind.TLS, f"tls error connecting to {endpoint.host}:{endpoint.port}: {reason}")
    # "connecting to host:port": the form observe.reasons strips before it reads the words (a host's name is free text).
    return Failure(FailureKind.CONNECTION, f"connection error connecting to {endpoint.host}:{endpoint.port}: {reason}")
