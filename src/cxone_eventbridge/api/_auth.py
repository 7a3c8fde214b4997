"""OAuth2 for the control plane, as an ``httpx.Auth`` flow: every API request passes through here.

- The token request carries the client's credentials (HTTP Basic, RFC 6749 section 2.3.1); the tutorial's
  carried none at all.
- The token is cached and refreshed shortly before it expires.
- One refresh in flight: however many requests find the cache cold or stale, they wait on one lock and
  exactly one of them asks the token endpoint; the rest reuse its answer.
- A 401 on an API request refreshes once (unless a concurrent request already did) and replays the
  request once; a second 401 is the caller's to see.

The token request is yielded from the flow, so it travels through the client's own transport, proxy,
CA bundle and event hooks, like any other request.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from cxone_eventbridge.api._errors import error_from_response
from cxone_eventbridge.config import GrantType
from cxone_eventbridge.exceptions import AuthenticationError, ConfigurationError

log = logging.getLogger(__name__)

# Refresh this long before the server's expiry (or a tenth of the token's life, if that is shorter), so a
# request never leaves with a token that dies in transit.
DEFAULT_REFRESH_MARGIN_S = 60.0
_DEFAULT_EXPIRES_IN_S = 3600.0


@dataclass(frozen=True)
class ClientCredentials:
    """What the token endpoint needs to know about us. ``repr`` never shows a secret."""

    grant_type: GrantType
    client_id: str | None = None
    client_secret: SecretStr | None = None
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    scopes: str = ""

    def check(self) -> None:
        """Raise ConfigurationError naming the missing setting."""
        missing: list[str] = []
        if self.grant_type is GrantType.CLIENT_CREDENTIALS:
            if not self.client_id:
                missing.append("CXONE_CLIENT_ID")
            if self.client_secret is None or not self.client_secret.get_secret_value():
                missing.append("CXONE_CLIENT_SECRET")
        else:
            if not self.access_key_id:
                missing.append("CXONE_ACCESS_KEY_ID")
            if self.access_key_secret is None or not self.access_key_secret.get_secret_value():
                missing.append("CXONE_ACCESS_KEY_SECRET")
        if missing:
            pronoun = "them" if len(missing) > 1 else "it"
            raise ConfigurationError(
                f"the {self.grant_type.value} grant needs {' and '.join(missing)}; set {pronoun} in the environment"
            )


@dataclass(frozen=True)
class AccessToken:
    """A cached bearer token and when to stop using it (on the injected monotonic clock)."""

    value: SecretStr
    refresh_at: float


class OAuth2Auth(httpx.Auth):
    """Bearer tokens from ``token_url``, cached, refreshed single-flight, replayed once on 401."""

    def __init__(
        self,
        token_url: str,
        credentials: ClientCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
    ) -> None:
        credentials.check()
        self.token_url = token_url
        self._credentials = credentials
        self._clock = clock
        self._refresh_margin_s = refresh_margin_s
        self._token: AccessToken | None = None
        # Bumped on every successful fetch; a request that saw generation N and got a 401 refreshes only
        # if nobody has fetched since, so 100 concurrent 401s cost one token request, not 100.
        self._generation = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OAuth2Auth(token_url={self.token_url!r}, grant_type={self._credentials.grant_type.value!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("OAuth2Auth is async-only; use it with httpx.AsyncClient")
        yield request  # pragma: no cover -- makes this a generator, as httpx expects

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._is_fresh():
            async with self._lock:
                if not self._is_fresh():  # another request may have refreshed while we waited
                    token_response = yield self._token_request()
                    await self._store(token_response)
        generation, token = self._current()
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._generation == generation:
                log.info("API answered 401; refreshing the access token once and replaying the request")
                self._token = None
                token_response = yield self._token_request()
                await self._store(token_response)
        _, token = self._current()
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        yield request

    def _is_fresh(self) -> bool:
        return self._token is not None and self._clock() < self._token.refresh_at

    def _current(self) -> tuple[int, SecretStr]:
        if self._token is None:  # pragma: no cover -- _store either sets a token or raises
            raise AuthenticationError("no access token", status_code=401)
        return self._generation, self._token.value

    def _token_request(self) -> httpx.Request:
        creds = self._credentials
        form: dict[str, str] = {"grant_type": creds.grant_type.value}
        if creds.grant_type is GrantType.PASSWORD:
            form["username"] = creds.access_key_id or ""
            form["password"] = creds.access_key_secret.get_secret_value() if creds.access_key_secret else ""
        if creds.scopes:
            form["scope"] = creds.scopes
        headers = {"Accept": "application/json"}
        if creds.client_id and creds.client_secret is not None:
            # Plain "id:secret" as RFC 7617 has it; like requests and httpx, no form-encoding first, which
            # is what token servers accept in practice.
            pair = f"{creds.client_id}:{creds.client_secret.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return httpx.Request("POST", self.token_url, data=form, headers=headers)

    async def _store(self, response: httpx.Response) -> None:
        await response.aread()
        if response.status_code != 200:
            raise error_from_response(response, action="token request")
        try:
            payload: Any = response.json()
        except ValueError as exc:
            raise AuthenticationError(
                "the token endpoint answered 200 without a JSON body", status_code=response.status_code
            ) from exc
        access_token = payload.get("access_token") if isinstance(payload, dict) else None
        token_type = payload.get("token_type", "bearer") if isinstance(payload, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise AuthenticationError("the token endpoint answered without an access_token", status_code=200)
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise AuthenticationError(f"unsupported token_type {token_type!r}; expected bearer", status_code=200)
        expires_in = payload.get("expires_in", _DEFAULT_EXPIRES_IN_S)
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = float(expires_in)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = _DEFAULT_EXPIRES_IN_S
        margin = min(self._refresh_margin_s, float(expires_in) / 10)
        self._token = AccessToken(value=SecretStr(access_token), refresh_at=self._clock() + float(expires_in) - margin)
        self._generation += 1
        log.debug("fetched an access token valid for %.0f s", float(expires_in))
