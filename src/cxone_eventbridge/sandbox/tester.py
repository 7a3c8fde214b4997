"""The test call: one real, signed synthetic event POSTed to a target's endpoint.

The destination is resolved and checked against the egress policy first (SSRF), and the request then goes
to the checked address itself (the URL's host kept for ``Host``, SNI and certificate checks), so a DNS
answer that changes between the check and the connection cannot redirect it. Redirects are not followed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus, urlsplit, urlunsplit

import httpx

from cxone_eventbridge import __version__, secret_refs, signing
from cxone_eventbridge.exceptions import EgressDeniedError
from cxone_eventbridge.models import AuthType, IntegrationTarget, OAuthClientCredentials, TargetTestResult, TestOutcome
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, canonical_host, resolve_and_check, system_resolver
from cxone_eventbridge.transform import JSON_CONTENT_TYPE, DeliveryContext, Payload, target_input

TEST_EVENT_TYPE = "target.test"


@dataclass(frozen=True)
class TestCallOutcome:
    """The HTTP status the sandbox answers with and the result body."""

    __test__ = False  # not a pytest test class, despite the name

    http_status: int
    result: TargetTestResult


def client_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The system's CAs plus, optionally, a local CA (the receiver's ca.pem)."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def _auth_headers(target: IntegrationTarget) -> dict[str, str]:
    auth = target.authentication
    if auth.type == AuthType.NONE or auth.value is None:
        return {}
    value = auth.value.get_secret_value()
    if secret_refs.is_reference(value):
        raise ValueError("authentication.value is an unresolved ${env:...} reference; send the resolved value")
    if auth.type == AuthType.BEARER:
        return {"Authorization": f"Bearer {value}"}
    if auth.type == AuthType.BASIC:
        return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode("ascii")}
    return {auth.header_name or "X-API-Key": value}


def _request_headers(
    target: IntegrationTarget, test_id: str, timestamp: int, body: bytes, content_type: str
) -> dict[str, str]:
    headers = {"Content-Type": content_type, "User-Agent": f"cxeb-sandbox/{__version__}"}
    headers.update(_auth_headers(target))
    if target.signing_secret is not None:
        secret = target.signing_secret.get_secret_value()
        if secret_refs.is_reference(secret):
            raise ValueError("signingSecret is an unresolved ${env:...} reference; send the resolved value")
        previous = target.previous_signing_secret
        also = (
            [previous.secret.get_secret_value()]
            if previous is not None and previous.secret is not None and previous.active_at(timestamp)
            else []
        )
        headers.update(signing.signature_headers(secret, test_id, timestamp, body, also=also))
    return headers


def _failed(http_status: int, test_id: str, error: str, status_code: int | None = None) -> TestCallOutcome:
    result = TargetTestResult(result=TestOutcome.FAILED, status_code=status_code, error=error, test_id=test_id)
    return TestCallOutcome(http_status, result)


async def send_test_event(
    target: IntegrationTarget,
    *,
    policy: EgressPolicy,
    ssl_context: ssl.SSLContext,
    clock: Callable[[], float] = time.time,
    resolver: Resolver = system_resolver,
) -> TestCallOutcome:
    """POST ``{"eventType": "target.test", "testId", "timestamp"}`` (as the target's input settings shape it).

    200 when it passed, 502/504 when not.
    """
    test_id = f"tst_{uuid.uuid4().hex}"
    now = clock()
    body = json.dumps(
        {
            "eventType": TEST_EVENT_TYPE,
            "testId": test_id,
            "timestamp": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
        }
    ).encode()
    # The endpoint receives what the router would send it: the target's input form applies to the test event.
    payload = Payload(body, JSON_CONTENT_TYPE)
    if (shaped := target_input(target)) is not None:
        payload = shaped.render(body, DeliveryContext(test_id, now, target.name, target.id))
    body = payload.body
    parts = urlsplit(target.endpoint)
    host = parts.hostname or ""
    port = parts.port or 443
    try:
        headers = _request_headers(target, test_id, int(now), body, payload.content_type)
    except ValueError as exc:
        return _failed(502, test_id, str(exc))
    timeout_s = target.retry_policy.timeout_ms / 1000
    oauth = target.authentication.oauth
    if target.authentication.type is AuthType.OAUTH_CLIENT_CREDENTIALS and oauth is not None:
        # The real token exchange, as the router does it: a failure here is the test's answer.
        token = await _exchange_token(oauth, policy, ssl_context, resolver, timeout_s)
        if not token.startswith("Bearer "):
            return _failed(502, test_id, token)
        headers["Authorization"] = token
    try:
        addresses = await resolve_and_check(host, port, policy, resolver)
    except EgressDeniedError as exc:
        return _failed(502, test_id, str(exc))
    host = canonical_host(host)  # resolve_and_check refused any other spelling; SNI and Host use this one
    address = addresses[0]
    pinned = urlunsplit(("https", f"{_netloc_host(address)}:{port}", parts.path or "/", parts.query, ""))
    headers["Host"] = _netloc_host(host) if parts.port is None else f"{_netloc_host(host)}:{parts.port}"
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(verify=ssl_context, timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(pinned, content=body, headers=headers, extensions={"sni_hostname": host})
    except httpx.TimeoutException:
        return _failed(504, test_id, f"the endpoint did not answer within {target.retry_policy.timeout_ms} ms")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return _failed(502, test_id, f"could not reach the endpoint: {reason}")
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    if 200 <= response.status_code < 300:
        result = TargetTestResult(
            result=TestOutcome.PASSED, status_code=response.status_code, latency_ms=latency_ms, test_id=test_id
        )
        return TestCallOutcome(200, result)
    result = TargetTestResult(
        result=TestOutcome.FAILED,
        status_code=response.status_code,
        latency_ms=latency_ms,
        error=f"the endpoint answered HTTP {response.status_code}",
        test_id=test_id,
    )
    return TestCallOutcome(502, result)


async def _exchange_token(
    oauth: OAuthClientCredentials,
    policy: EgressPolicy,
    ssl_context: ssl.SSLContext,
    resolver: Resolver,
    timeout_s: float,
) -> str:
    """``Bearer <token>`` from the target's token endpoint, or why not (secret-free words, "token endpoint ...")."""
    secret = oauth.client_secret.get_secret_value() if oauth.client_secret is not None else ""
    if secret_refs.is_reference(secret):
        return "token endpoint: oauth.clientSecret is an unresolved ${env:...} reference; send the resolved value"
    parts = urlsplit(oauth.token_url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        addresses = await resolve_and_check(host, port, policy, resolver)
    except EgressDeniedError as exc:
        return f"token endpoint: {exc}"
    host = canonical_host(host)
    pinned = urlunsplit(("https", f"{_netloc_host(addresses[0])}:{port}", parts.path or "/", parts.query, ""))
    form = {**oauth.token_form_fields, "grant_type": "client_credentials"}
    if oauth.scopes:
        form["scope"] = " ".join(oauth.scopes)
    credentials = f"{quote_plus(oauth.client_id)}:{quote_plus(secret)}"
    headers = {
        **oauth.token_headers,
        "Accept": "application/json",
        "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii"),
        "Host": _netloc_host(host) if parts.port is None else f"{_netloc_host(host)}:{parts.port}",
        "User-Agent": f"cxeb-sandbox/{__version__}",
    }
    try:
        async with httpx.AsyncClient(verify=ssl_context, timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(pinned, data=form, headers=headers, extensions={"sni_hostname": host})
    except httpx.TimeoutException:
        return f"token endpoint did not answer within {timeout_s * 1000:.0f} ms"
    except httpx.HTTPError as exc:
        return f"token endpoint could not be reached: {type(exc).__name__}"
    if not 200 <= response.status_code < 300:
        return f"token endpoint answered HTTP {response.status_code}"
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token or not token.isprintable() or " " in token:
        return "token endpoint answered without a usable access_token"
    return f"Bearer {token}"


def _netloc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
