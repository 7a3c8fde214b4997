"""One signed delivery over HTTPS: build the request, send it with aiohttp, classify the answer.

The body is the event's JSON exactly as it was accepted (``Content-Type: application/json``). Each
request carries the target's authentication header and the Standard Webhooks headers: ``webhook-id`` is
the delivery's id (the same on every attempt), ``webhook-timestamp`` and ``webhook-signature`` are
computed per attempt. Redirects are not followed (a 3xx is a permanent failure). The per-attempt timeout
is the target's ``retryPolicy.timeoutMs``.

SSRF guard: every destination address is checked with :mod:`cxone_eventbridge.ssrf` before a connection
is made, and the connection goes to the address that was checked. Host names are resolved by a resolver
installed in the session's connector, which returns only addresses that passed the check, so a DNS
answer that changes between check and connect (rebinding) cannot slip past. IP literals never reach a
resolver and are checked here before the request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from cxone_eventbridge import __version__ as _version
from cxone_eventbridge.exceptions import EgressDeniedError
from cxone_eventbridge.models import AuthType, IntegrationTarget
from cxone_eventbridge.retry import Outcome, classify_status, parse_retry_after
from cxone_eventbridge.router.queue import Delivery
from cxone_eventbridge.signing import signing_key
from cxone_eventbridge.ssrf import (
    EgressPolicy,
    Resolver,
    destination_refusal,
    resolve_and_check,
    system_resolver,
)

USER_AGENT = f"cxone-eventbridge/{_version}"
MAX_RESPONSE_BYTES = 64 * 1024  # read (then drop) this much of an answer so the connection can be reused
DNS_CACHE_S = 10  # a host's checked addresses are reused this long, so no lookup runs per request


class AttemptOutcome(StrEnum):
    """What one attempt came to. ``retry`` and ``error`` are retried; the others are final."""

    SUCCESS = Outcome.SUCCESS.value
    RETRY = Outcome.RETRY.value  # a retryable status (408, 425, 429, 5xx, configured 4xx)
    PERMANENT = Outcome.PERMANENT.value  # any other status, redirects included
    GONE = Outcome.GONE.value  # 410: the target is disabled
    ERROR = "error"  # no answer: timeout, refused, reset, TLS failure, DNS failure
    REFUSED = "refused"  # the SSRF guard refused the destination; nothing was sent

    @property
    def retryable(self) -> bool:
        return self in (AttemptOutcome.RETRY, AttemptOutcome.ERROR)


_OUTCOMES = {outcome: AttemptOutcome(outcome.value) for outcome in Outcome}


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The outcome of one HTTP attempt."""

    outcome: AttemptOutcome
    status: int | None
    latency_s: float
    retry_after_s: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class RequestTemplate:
    """What every attempt to one target shares, computed once per target (not once per attempt).

    The static headers (content type, user agent, authentication), the parsed URL, the timeout and the
    HMAC keyed with the signing secret; an attempt copies the headers, adds the three Standard Webhooks
    headers and finishes a copy of the keyed HMAC over ``{id}.{timestamp}.{body}`` (the same value as
    :func:`cxone_eventbridge.signing.sign`).
    """

    __slots__ = ("_headers", "_mac", "target", "timeout", "url")

    def __init__(self, target: IntegrationTarget) -> None:
        self.target = target
        self.url = URL(target.endpoint)
        self.timeout = aiohttp.ClientTimeout(total=target.retry_policy.timeout_ms / 1000)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        auth = target.authentication
        value = auth.value.get_secret_value() if auth.value is not None else ""
        if auth.type is AuthType.BEARER:
            headers["Authorization"] = f"Bearer {value}"
        elif auth.type is AuthType.BASIC:
            headers["Authorization"] = "Basic " + base64.b64encode(value.encode()).decode()
        elif auth.type is AuthType.API_KEY:
            headers[auth.header_name or "X-API-Key"] = value
        self._headers = headers
        secret = target.signing_secret
        self._mac = hmac.new(signing_key(secret.get_secret_value()), digestmod=hashlib.sha256) if secret else None

    def headers(self, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The headers of one attempt."""
        headers = self._headers.copy()
        stamp = str(timestamp)
        headers["webhook-id"] = delivery_id
        headers["webhook-timestamp"] = stamp
        if self._mac is not None:
            mac = self._mac.copy()
            mac.update(f"{delivery_id}.{stamp}.".encode())
            mac.update(body)
            headers["webhook-signature"] = "v1," + base64.b64encode(mac.digest()).decode()
        # Without a secret there is nothing to sign with; the id and time still let the receiver dedupe.
        return headers


def build_request(target: IntegrationTarget, delivery: Delivery, *, timestamp: int) -> PreparedRequest:
    """The request for one attempt of ``delivery`` to ``target``; pure, so it can be tested alone."""
    headers = RequestTemplate(target).headers(delivery.delivery_id, timestamp, delivery.body)
    return PreparedRequest(url=target.endpoint, headers=headers, body=delivery.body)


class CheckedResolver(AbstractResolver):
    """An aiohttp resolver that returns only addresses the egress policy admits (and refuses the rest).

    Refusal raises :class:`EgressDeniedError`, which aiohttp passes through unchanged; a lookup that fails
    raises ``OSError``, which aiohttp reports as a connection error (retried: DNS failures pass).
    """

    def __init__(self, policy: EgressPolicy, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve_and_check(host, port, self._policy, self._resolver)
        except EgressDeniedError as exc:
            if isinstance(exc.__cause__, OSError):
                raise exc.__cause__ from None
            raise
        results: list[ResolveResult] = []
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            results.append(
                {
                    "hostname": host,
                    "host": text,
                    "port": port,
                    "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def create_session(
    *,
    egress: EgressPolicy,
    ssl_context: ssl.SSLContext | None = None,
    limit: int = 256,
    resolver: Resolver = system_resolver,
) -> aiohttp.ClientSession:
    """The one delivery session: checked DNS, no cookies, no proxies from the environment."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(egress, resolver),
        ssl=ssl_context if ssl_context is not None else True,
        limit=limit,  # the dispatcher's max_in_flight: one kept-alive connection per attempt in flight
        limit_per_host=0,
        use_dns_cache=True,
        ttl_dns_cache=DNS_CACHE_S,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
    )


def ssl_context_for(ca_path: str | None) -> ssl.SSLContext:
    """A verifying TLS context, trusting ``ca_path`` too when given (the local receiver's CA)."""
    context = ssl.create_default_context()
    if ca_path is not None:
        context.load_verify_locations(cafile=ca_path)
    return context


class DeliveryClient:
    """Sends attempts over one shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        egress: EgressPolicy,
        clock: Callable[[], float] = time.time,
        retryable_4xx: frozenset[int] = frozenset(),
    ) -> None:
        self._session = session
        self._egress = egress
        self._clock = clock
        self._retryable_4xx = retryable_4xx
        self._destination_refused: dict[str, str | None] = {}  # by endpoint: why refused, or None
        self._templates: dict[str, RequestTemplate] = {}  # by target name, rebuilt when the target object changes

    def _check_destination(self, template: RequestTemplate) -> None:
        """Refuse a destination whose host is not canonical or is a refused IP literal.

        The host checked is the one aiohttp connects to (yarl's normalised ``raw_host``), and it must be
        the endpoint's canonical host: aiohttp sends an IP literal straight to a socket without asking
        the resolver, so a spelling that only yarl reads as an IP address must never get this far.
        Cached per endpoint: the policy is fixed for the client's life.
        """
        url = template.target.endpoint
        if url not in self._destination_refused:
            written = urlsplit(url).hostname or ""
            self._destination_refused[url] = destination_refusal(written, template.url.raw_host or "", self._egress)
        refused = self._destination_refused[url]
        if refused is not None:
            raise EgressDeniedError(refused)

    async def send(self, target: IntegrationTarget, delivery: Delivery) -> AttemptResult:
        """One attempt; never raises for a network outcome, only returns it."""
        template = self._templates.get(target.name)
        if template is None or template.target is not target:
            template = self._templates[target.name] = RequestTemplate(target)
        body = delivery.body
        headers = template.headers(delivery.delivery_id, int(self._clock()), body)
        started = time.perf_counter()
        try:
            self._check_destination(template)
            async with self._session.post(
                template.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=template.timeout,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                await _drain(response)
        except EgressDeniedError as exc:
            return AttemptResult(AttemptOutcome.REFUSED, None, time.perf_counter() - started, error=str(exc))
        except TimeoutError:
            return AttemptResult(
                AttemptOutcome.ERROR,
                None,
                time.perf_counter() - started,
                error=f"timeout after {target.retry_policy.timeout_ms} ms",
            )
        except (aiohttp.ClientError, OSError) as exc:
            return AttemptResult(AttemptOutcome.ERROR, None, time.perf_counter() - started, error=_describe(exc))
        latency = time.perf_counter() - started
        outcome = _OUTCOMES[classify_status(status, retryable_4xx=self._retryable_4xx)]
        retry_after_s = None
        if outcome is AttemptOutcome.RETRY and retry_after is not None:
            retry_after_s = parse_retry_after(retry_after, now=datetime.fromtimestamp(self._clock(), UTC))
        return AttemptResult(outcome, status, latency, retry_after_s=retry_after_s, error=None)


async def _drain(response: aiohttp.ClientResponse) -> None:
    if response.content.is_eof():
        # The whole answer has arrived (the usual small one, in the same read as the status line), so
        # aiohttp has already put the connection back in the pool; there is nothing to read for it.
        return
    length = response.content_length
    if length is not None and length <= MAX_RESPONSE_BYTES:
        await response.read()  # the usual small answer: one read instead of a loop
        return
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            return
        remaining -= len(chunk)


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    kind = "tls" if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError) else "connection"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause: Any = exc.os_error
        return f"{kind} error connecting to {exc.host}:{exc.port}: {cause.strerror or cause}"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return f"{kind} error: the server closed the connection ({type(exc).__name__})"
    return f"{kind} error: {type(exc).__name__}: {exc}"


async def aclose_session(session: aiohttp.ClientSession) -> None:
    """Close the session and let TLS transports finish closing (avoids ResourceWarnings)."""
    await session.close()
    await asyncio.sleep(0)
