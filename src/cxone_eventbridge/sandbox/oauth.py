"""OAuth2 for the sandbox: the client registry, the token grants (RFC 6749) and bearer-token checks.

Tokens are self-contained and HMAC-signed with a key kept in the database, so they survive a restart with
``--db`` and a forged or altered token fails the signature check. Each client id is its own tenant; the
password grant (CXone access keys) authenticates the client too and acts for the client's tenant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from cxone_eventbridge.exceptions import SandboxError
from cxone_eventbridge.sandbox.config import ALL_SCOPES, SandboxClient

_TOKEN_PREFIX = "sbx1"  # noqa: S105 -- a format marker, not a secret
_MAX_TOKEN_CHARS = 4096


class OAuthError(SandboxError):
    """A token-endpoint error, rendered as RFC 6749 section 5.2 says."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="cxeb-sandbox"'
        return headers


class InvalidTokenError(SandboxError):
    """A bearer token that is malformed, forged or expired."""


@dataclass(frozen=True)
class Principal:
    """Who a valid access token speaks for."""

    client_id: str
    tenant: str
    scopes: frozenset[str]
    expires_at: int


class ClientRegistry:
    """The OAuth2 clients; tests register fresh ones (fresh tenants) while the server runs."""

    def __init__(self, clients: Iterable[SandboxClient]) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, SandboxClient] = {}
        for client in clients:
            self.register(client)

    def register(self, client: SandboxClient) -> None:
        with self._lock:
            self._clients[client.client_id] = client

    def authenticate(self, client_id: str, client_secret: str) -> SandboxClient | None:
        with self._lock:
            client = self._clients.get(client_id)
        if client is None:
            # Compare anyway so that unknown ids and wrong secrets take the same time.
            hmac.compare_digest(client_secret.encode(), b"\x00" * 16)
            return None
        if hmac.compare_digest(client_secret.encode(), client.client_secret.encode()):
            return client
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and verifies the sandbox's access tokens."""

    def __init__(self, key: bytes, *, ttl_s: int, clock: Callable[[], float]) -> None:
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{_TOKEN_PREFIX}.{payload}".encode(), hashlib.sha256).digest())

    def issue(self, client: SandboxClient, scopes: frozenset[str]) -> dict[str, Any]:
        """The token response body."""
        expires_at = int(self._clock()) + self._ttl_s
        claims = {
            "sub": client.client_id,
            "ten": client.client_id,
            "scp": " ".join(sorted(scopes)),
            "exp": expires_at,
            "jti": secrets.token_hex(8),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return {
            "access_token": f"{_TOKEN_PREFIX}.{payload}.{self._sign(payload)}",
            "token_type": "Bearer",
            "expires_in": self._ttl_s,
            "scope": claims["scp"],
        }

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; InvalidTokenError says what is wrong otherwise."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise InvalidTokenError("the access token is malformed")
        prefix, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if prefix != _TOKEN_PREFIX or not payload or not signature:
            raise InvalidTokenError("the access token is malformed")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidTokenError("the access token is not valid")
        try:
            claims = json.loads(_unb64(payload))
            principal = Principal(
                client_id=str(claims["sub"]),
                tenant=str(claims["ten"]),
                scopes=frozenset(str(claims["scp"]).split()),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidTokenError("the access token is malformed") from exc
        if principal.expires_at <= self._clock():
            raise InvalidTokenError("the access token has expired")
        return principal


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "client authentication must use HTTP Basic", status=401)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "the Basic credentials are not valid base64", status=401) from exc
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "the Basic credentials must be 'client_id:client_secret'", status=401)
    return client_id, client_secret


def _authenticate_client(registry: ClientRegistry, form: Mapping[str, str], authorization: str | None) -> SandboxClient:
    basic = _basic_credentials(authorization)
    in_form = (form["client_id"], form.get("client_secret", "")) if "client_id" in form else None
    if basic is not None and in_form is not None and in_form[0] != basic[0]:
        raise OAuthError("invalid_request", "client credentials were sent twice, and they differ")
    credentials = basic or in_form
    if credentials is None:
        raise OAuthError("invalid_client", "client authentication is required (HTTP Basic or form)", status=401)
    client = registry.authenticate(*credentials)
    if client is None and basic is not None:
        # RFC 6749 section 2.3.1 form-encodes id and secret before Basic; accept both spellings.
        client = registry.authenticate(unquote_plus(basic[0]), unquote_plus(basic[1]))
    if client is None:
        raise OAuthError("invalid_client", "unknown client or wrong client secret", status=401)
    return client


def _granted_scopes(client: SandboxClient, requested: str | None) -> frozenset[str]:
    if requested is None or not requested.strip():
        return client.scopes
    wanted = frozenset(requested.split())
    if unknown := wanted - ALL_SCOPES:
        raise OAuthError("invalid_scope", f"unknown scope(s): {' '.join(sorted(unknown))[:200]}")
    if refused := wanted - client.scopes:
        raise OAuthError("invalid_scope", f"this client may not be granted: {' '.join(sorted(refused))}")
    return wanted


def grant_token(
    registry: ClientRegistry, issuer: TokenIssuer, form: Mapping[str, str], authorization: str | None
) -> dict[str, Any]:
    """Run one token request (client_credentials or password grant) and return the token response."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type not in ("client_credentials", "password"):
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:50]!r} is not supported")
    client = _authenticate_client(registry, form, authorization)
    if grant_type == "password":
        username, password = form.get("username"), form.get("password")
        if not username or not password:
            raise OAuthError("invalid_request", "the password grant needs username and password (an access key)")
        key_ok = client.access_key_id is not None and client.access_key_secret is not None
        if not (
            key_ok
            and hmac.compare_digest(username.encode(), str(client.access_key_id).encode())
            and hmac.compare_digest(password.encode(), str(client.access_key_secret).encode())
        ):
            raise OAuthError("invalid_grant", "unknown access key or wrong access key secret")
    return issuer.issue(client, _granted_scopes(client, form.get("scope")))
