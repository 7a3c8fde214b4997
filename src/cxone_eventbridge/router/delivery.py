"""One signed delivery over HTTPS: build the request, send it over the data plane's HTTP client, classify the answer.

The body is the event's JSON exactly as it was accepted (``Content-Type: application/json``), or what the
target's ``input``, ``inputPath`` or ``inputTransformer`` makes of it (``transform.py``; the content type
follows, and the signature covers the bytes sent, the same on every attempt). Each
request carries the target's authentication header and the Standard Webhooks headers: ``webhook-id`` is
the delivery's id (the same on every attempt), ``webhook-timestamp`` and ``webhook-signature`` are
computed per attempt. Redirects are not followed (a 3xx is a permanent failure). The per-attempt timeout
is the target's ``retryPolicy.timeoutMs``.

The HTTP client is :class:`cxone_eventbridge.router.http_transport.HttpTransport` (pyreqwest), which also
holds the SSRF guard: every destination is checked with :mod:`cxone_eventbridge.ssrf` before a
connection is made, and the connection goes to the address that was checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cxone_eventbridge import __version__ as _version
from cxone_eventbridge.models import AuthType, IntegrationTarget
from cxone_eventbridge.retry import Outcome, classify_status, parse_retry_after
from cxone_eventbridge.router.http_transport import (
    Answer,
    Endpoint,
    Failure,
    FailureKind,
    HttpTransport,
    parse_endpoint,
)
from cxone_eventbridge.router.queue import Delivery
from cxone_eventbridge.router.target_tokens import TargetTokens, TokenFailure
from cxone_eventbridge.signing import signing_key
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, system_resolver
from cxone_eventbridge.transform import JSON_CONTENT_TYPE, DeliveryContext, Payload, target_input

USER_AGENT = f"cxone-eventbridge/{_version}"


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
        return self in _RETRYABLE


# A set, not a tuple of ``AttemptOutcome.X``: reading an enum member off its class costs a descriptor
# call in Python 3.11, and this is asked on every attempt.
_RETRYABLE = frozenset({AttemptOutcome.RETRY, AttemptOutcome.ERROR})
_OUTCOMES = {outcome: AttemptOutcome(outcome.value) for outcome in Outcome}


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The outcome of one HTTP attempt."""

    outcome: AttemptOutcome
    status: int | None
    latency_s: float
    retry_after_s: float | None = None
    error: str | None = None
    auth_failed: bool = False  # the target's token endpoint gave no token; nothing was sent to the target


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    url: str
    headers: dict[str, str]
    body: bytes


class RequestTemplate:
    """What every attempt to one target shares, computed once per target (not once per attempt).

    The static headers (content type, user agent, authentication), the URL as the HTTP client reads it
    (or why it cannot be read), the timeout and the HMAC keyed with the signing secret; an attempt copies
    the headers, adds the three Standard Webhooks headers and finishes a copy of the keyed HMAC over
    ``{id}.{timestamp}.{body}`` (the same value as :func:`cxone_eventbridge.signing.sign`).
    """

    __slots__ = (
        "_headers",
        "_input",
        "_mac",
        "_previous_mac",
        "_previous_until",
        "endpoint",
        "endpoint_problem",
        "target",
        "timeout",
    )

    def __init__(self, target: IntegrationTarget) -> None:
        self.target = target
        self.endpoint: Endpoint | None = None
        self.endpoint_problem: str | None = None
        try:
            self.endpoint = parse_endpoint(target.endpoint)
        except ValueError as exc:  # validation refuses such endpoints; a target built around it gets here
            self.endpoint_problem = f"destination {exc}; refused"
        self.timeout = timedelta(milliseconds=target.retry_policy.timeout_ms)
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
        self._input = target_input(target)  # validated with the target, so this does not raise
        # A rotated-out secret signs too until its grace period ends, so receivers not yet updated verify.
        previous = target.previous_signing_secret
        self._previous_mac: hmac.HMAC | None = None
        self._previous_until = 0.0
        if self._mac is not None and previous is not None and previous.secret is not None:
            self._previous_mac = hmac.new(signing_key(previous.secret.get_secret_value()), digestmod=hashlib.sha256)
            self._previous_until = previous.expires_at.timestamp()

    def payload(self, delivery: Delivery) -> Payload:
        """What this target receives for ``delivery``: the event as accepted, or its transformed form."""
        if self._input is None:
            return Payload(delivery.body, JSON_CONTENT_TYPE)
        context = DeliveryContext(delivery.event_id, delivery.accepted_at, self.target.name, self.target.id)
        return self._input.render(delivery.body, context)

    def headers(
        self, delivery_id: str, timestamp: int, body: bytes, content_type: str = JSON_CONTENT_TYPE
    ) -> dict[str, str]:
        """The headers of one attempt."""
        headers = self._headers.copy()
        if content_type != JSON_CONTENT_TYPE:
            headers["Content-Type"] = content_type
        stamp = str(timestamp)
        headers["webhook-id"] = delivery_id
        headers["webhook-timestamp"] = stamp
        if self._mac is not None:
            signed = f"{delivery_id}.{stamp}.".encode()
            signature = _finish(self._mac, signed, body)
            if self._previous_mac is not None and timestamp < self._previous_until:
                signature += " " + _finish(self._previous_mac, signed, body)  # Standard Webhooks: space-separated
            headers["webhook-signature"] = signature
        # Without a secret there is nothing to sign with; the id and time still let the receiver dedupe.
        return headers


def _finish(keyed: hmac.HMAC, signed: bytes, body: bytes) -> str:
    mac = keyed.copy()
    mac.update(signed)
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True, slots=True)
class _TokenProblem:
    outcome: AttemptOutcome
    error: str


def build_request(target: IntegrationTarget, delivery: Delivery, *, timestamp: int) -> PreparedRequest:
    """The request for one attempt of ``delivery`` to ``target``; pure, so it can be tested alone."""
    template = RequestTemplate(target)
    payload = template.payload(delivery)
    headers = template.headers(delivery.delivery_id, timestamp, payload.body, payload.content_type)
    return PreparedRequest(url=target.endpoint, headers=headers, body=payload.body)


def create_transport(
    *,
    egress: EgressPolicy,
    ssl_context: ssl.SSLContext | None = None,
    limit: int = 256,
    resolver: Resolver = system_resolver,
) -> HttpTransport:
    """The one delivery HTTP client: checked and pinned DNS, no cookies, no proxies from the environment.

    ``ssl_context`` gives the extra CAs to trust besides the system's (see :func:`ssl_context_for`).
    """
    return HttpTransport(egress=egress, ssl_context=ssl_context, limit=limit, resolver=resolver, user_agent=USER_AGENT)


def ssl_context_for(ca_path: str | None) -> ssl.SSLContext:
    """A verifying TLS context, trusting ``ca_path`` too when given (the local receiver's CA)."""
    context = ssl.create_default_context()
    if ca_path is not None:
        context.load_verify_locations(cafile=ca_path)
    return context


# Extra headers for one attempt, asked for just before it is sent (tracing puts its traceparent here).
HeaderHook = Callable[[IntegrationTarget, Delivery], Mapping[str, str]]


class DeliveryClient:
    """Sends attempts over the one shared HTTP transport."""

    def __init__(
        self,
        transport: HttpTransport,
        *,
        clock: Callable[[], float] = time.time,
        retryable_4xx: frozenset[int] = frozenset(),
        header_hook: HeaderHook | None = None,
        tokens: TargetTokens | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._retryable_4xx = retryable_4xx
        self._header_hook = header_hook
        self._templates: dict[str, RequestTemplate] = {}  # by target name, rebuilt when the target object changes
        # OAuth targets' tokens: fetched over the same transport (the same SSRF guard), cached per target.
        self.tokens = tokens if tokens is not None else TargetTokens(transport, clock=clock)

    async def send(self, target: IntegrationTarget, delivery: Delivery) -> AttemptResult:
        """One attempt; never raises for a network outcome, only returns it."""
        template = self._templates.get(target.name)
        if template is None or template.target is not target:
            template = self._templates[target.name] = RequestTemplate(target)
        if template.endpoint is None:
            return AttemptResult(AttemptOutcome.REFUSED, None, 0.0, error=template.endpoint_problem)
        payload = template.payload(delivery)
        body = payload.body
        headers = template.headers(delivery.delivery_id, int(self._clock()), body, payload.content_type)
        if self._header_hook is not None:
            headers.update(self._header_hook(target, delivery))
        started = time.perf_counter()
        oauth = target.authentication.type is AuthType.OAUTH_CLIENT_CREDENTIALS
        if oauth:
            token = await self._authorize(target, headers)
            if token is not None:
                return AttemptResult(
                    token.outcome, None, time.perf_counter() - started, error=token.error, auth_failed=True
                )
        answer = await self._transport.post(template.endpoint, headers, body, template.timeout)
        if oauth and isinstance(answer, Answer) and answer.status == 401:
            # The token was refused (revoked, expired early): one fresh token, and this attempt once more.
            self.tokens.rejected(target, headers["Authorization"])
            token = await self._authorize(target, headers)
            if token is not None:
                return AttemptResult(
                    token.outcome, None, time.perf_counter() - started, error=token.error, auth_failed=True
                )
            answer = await self._transport.post(template.endpoint, headers, body, template.timeout)
        latency = time.perf_counter() - started
        if isinstance(answer, Failure):
            outcome = AttemptOutcome.REFUSED if answer.kind is FailureKind.REFUSED else AttemptOutcome.ERROR
            return AttemptResult(outcome, None, latency, error=answer.message)
        status = answer.status
        outcome = _OUTCOMES[classify_status(status, retryable_4xx=self._retryable_4xx)]
        retry_after_s = None
        if outcome is AttemptOutcome.RETRY and answer.retry_after is not None:
            retry_after_s = parse_retry_after(answer.retry_after, now=datetime.fromtimestamp(self._clock(), UTC))
        return AttemptResult(outcome, status, latency, retry_after_s=retry_after_s, error=None)

    async def _authorize(self, target: IntegrationTarget, headers: dict[str, str]) -> _TokenProblem | None:
        """Put the target's bearer token into ``headers``; what went wrong when there is none."""
        got = await self.tokens.authorization(target)
        if isinstance(got, TokenFailure):
            return _TokenProblem(AttemptOutcome.ERROR if got.retryable else AttemptOutcome.PERMANENT, got.message)
        headers["Authorization"] = got
        return None
