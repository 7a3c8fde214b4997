"""OAuth 2.0 client-credentials tokens for the targets whose API wants one (``oauth_client_credentials``).

One cache entry per target: the token is fetched from the target's ``tokenUrl`` on first use, reused until
shortly before it expires (``refresh_margin``), then fetched again. However many deliveries to a target are
in flight, one token request runs at a time (single-flight): the others wait for its answer. When the
target answers 401 to a token, :meth:`TargetTokens.rejected` drops that token (only if it is still the
current one, so a hundred 401s cause one refresh) and the delivery client asks again.

Token requests go over the data plane's own HTTP transport, so the token endpoint passes the same SSRF
guard as the target's endpoint. The request is RFC 6749's: ``grant_type=client_credentials`` (plus
``scope`` and the target's extra form fields) in an ``application/x-www-form-urlencoded`` body, the client
id and secret in HTTP Basic (section 2.3.1), plus the target's extra headers.

Failures are returned, never raised, as :class:`TokenFailure`: a message free of secrets (no token, no
client secret, no answer body; the RFC 6749 error code is kept) and whether another attempt may help
(timeouts, connection errors, 408, 429 and 5xx may; any other 4xx, a refused destination or an answer
without a usable bearer token will not).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote_plus, urlencode

from cxone_eventbridge.models import IntegrationTarget, OAuthClientCredentials
from cxone_eventbridge.retry import Outcome, classify_status
from cxone_eventbridge.router.http_transport import Failure, FailureKind, HttpTransport, parse_endpoint

TOKEN_FAILURE_PREFIX = "token endpoint"  # noqa: S105 -- the start of failure messages (observe/reasons.py reads it)
DEFAULT_LIFETIME_S = 300.0  # a token answer without expires_in: assume this, and refresh early
MAX_LIFETIME_S = 86_400.0
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


@dataclass(frozen=True, slots=True)
class TokenFailure:
    """No usable token: why, in secret-free words, and whether another attempt may get one."""

    message: str
    retryable: bool


@dataclass(slots=True)
class _Entry:
    key: tuple[object, ...]  # the settings the token was fetched with; other settings, other token
    oauth: OAuthClientCredentials | None = None  # the settings object last checked against ``key``
    authorization: str | None = None  # "Bearer <token>"
    refresh_at: float = 0.0
    expires_at: float = 0.0
    fetching: asyncio.Future[str | TokenFailure] | None = None


def _settings_key(oauth: OAuthClientCredentials) -> tuple[object, ...]:
    secret = oauth.client_secret.get_secret_value() if oauth.client_secret is not None else ""
    return (
        oauth.token_url,
        oauth.client_id,
        secret,
        tuple(oauth.scopes),
        tuple(sorted(oauth.token_form_fields.items())),
        tuple(sorted(oauth.token_headers.items())),
    )


class TargetTokens:
    """Per-target token cache with single-flight refresh. ``token_requests`` counts requests sent."""

    def __init__(
        self,
        transport: HttpTransport,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = 60.0,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._refresh_margin_s = refresh_margin_s
        self._entries: dict[str, _Entry] = {}
        self.token_requests = 0

    async def authorization(self, target: IntegrationTarget) -> str | TokenFailure:
        """The ``Authorization`` header value for an attempt to ``target``, fetching a token if needed."""
        oauth = target.authentication.oauth
        if oauth is None:
            return TokenFailure(f"{TOKEN_FAILURE_PREFIX}: the target has no OAuth settings", retryable=False)
        entry = self._entries.get(target.name)
        if entry is None or entry.oauth is not oauth:  # the same settings object: the same key, skip building it
            key = _settings_key(oauth)
            if entry is None or entry.key != key:
                entry = self._entries[target.name] = _Entry(key)
            entry.oauth = oauth
        if entry.authorization is not None and self._clock() < entry.refresh_at:
            return entry.authorization
        if entry.fetching is None:
            entry.fetching = asyncio.ensure_future(self._refresh(entry, oauth, target.retry_policy.timeout_ms))
        # Shielded: one waiter being cancelled (a shutdown) must not cancel the request the others wait for.
        return await asyncio.shield(entry.fetching)

    def rejected(self, target: IntegrationTarget, authorization: str) -> None:
        """The target answered 401 to ``authorization``: drop it, unless a newer token already replaced it."""
        entry = self._entries.get(target.name)
        if entry is not None and entry.authorization == authorization:
            entry.authorization = None

    def forget(self, name: str) -> None:
        """Drop a removed target's token."""
        self._entries.pop(name, None)

    async def _refresh(self, entry: _Entry, oauth: OAuthClientCredentials, timeout_ms: int) -> str | TokenFailure:
        try:
            started = self._clock()
            result = await self._fetch(oauth, timeout_ms)
            if isinstance(result, TokenFailure):
                if entry.authorization is not None and self._clock() < entry.expires_at:
                    return entry.authorization  # an early refresh failed: the current token still serves
                entry.authorization = None
                return result
            authorization, lifetime = result
            entry.authorization = authorization
            # Lifetime counted from when the request left: the server's clock started no later.
            entry.expires_at = started + lifetime
            entry.refresh_at = entry.expires_at - min(self._refresh_margin_s, lifetime / 10)
            return authorization
        finally:
            entry.fetching = None

    async def _fetch(self, oauth: OAuthClientCredentials, timeout_ms: int) -> tuple[str, float] | TokenFailure:
        try:
            endpoint = parse_endpoint(oauth.token_url)
        except ValueError:
            return TokenFailure(f"{TOKEN_FAILURE_PREFIX}: tokenUrl is not a URL the client can use", retryable=False)
        secret = oauth.client_secret.get_secret_value() if oauth.client_secret is not None else ""
        credentials = f"{quote_plus(oauth.client_id)}:{quote_plus(secret)}"
        form = {**oauth.token_form_fields, "grant_type": "client_credentials"}
        if oauth.scopes:
            form["scope"] = " ".join(oauth.scopes)
        headers = {
            **oauth.token_headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
        }
        self.token_requests += 1
        answer = await self._transport.post(
            endpoint, headers, urlencode(form).encode(), timedelta(milliseconds=timeout_ms), keep_body=True
        )
        if isinstance(answer, Failure):
            retryable = answer.kind is not FailureKind.REFUSED
            return TokenFailure(f"{TOKEN_FAILURE_PREFIX}: {answer.message}", retryable=retryable)
        if not 200 <= answer.status < 300:
            code = _error_code(answer.body)
            detail = f" ({code})" if code else ""
            retryable = classify_status(answer.status) is Outcome.RETRY
            return TokenFailure(f"{TOKEN_FAILURE_PREFIX} answered HTTP {answer.status}{detail}", retryable=retryable)
        return _token_of(answer.body)


def _token_of(body: bytes) -> tuple[str, float] | TokenFailure:
    """The ``Authorization`` value and lifetime from a 2xx token answer; a failure when it has no usable token."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return TokenFailure(f"{TOKEN_FAILURE_PREFIX} answered without a JSON object", retryable=False)
    token = data.get("access_token")
    if not isinstance(token, str) or not token or not token.isprintable() or " " in token:
        return TokenFailure(f"{TOKEN_FAILURE_PREFIX} answered without a usable access_token", retryable=False)
    token_type = data.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        return TokenFailure(f"{TOKEN_FAILURE_PREFIX} answered a token that is not a bearer token", retryable=False)
    lifetime = data.get("expires_in", DEFAULT_LIFETIME_S)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or not lifetime > 0:
        lifetime = DEFAULT_LIFETIME_S
    return f"Bearer {token}", min(float(lifetime), MAX_LIFETIME_S)


def _error_code(body: bytes) -> str | None:
    """RFC 6749's ``error`` code from an error answer, when it is one (a short lowercase word, no free text)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None
