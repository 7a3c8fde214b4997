"""A real HTTPS webhook receiver for demos, tests and benchmarks.

It answers every POST (200 by default, whatever the signature check says), records each request as one
JSON line (``time``, ``path``, ``headers``, ``body``, ``signature_valid``) flushed before it answers, and can
be told to fail: a fixed status, a fraction of random 503s, a ``Retry-After`` header, added latency.

With ``oauth_client_id``/``oauth_client_secret`` it is also an OAuth 2.0 server for the client-credentials
grant: ``POST /oauth/token`` (client id and secret in HTTP Basic or in the form) issues bearer tokens that
expire after ``oauth_token_ttl_s`` by its clock, and every other POST needs a live one (401 otherwise), so
targets of type ``oauth_client_credentials`` can be demonstrated and tested against it.

Speed matters: it must not be the bottleneck of the delivery benchmark. So it uses aiohttp's low-level
server (no router), writes through one buffered file object with a flush per request (the record is in
the OS before the answer leaves) and never fsyncs (a benchmark receiver need not survive a power cut).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import json
import random
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote_plus

from aiohttp import web

from cxone_eventbridge import signing
from cxone_eventbridge.defaults import DEFAULT_RECEIVER_PORT
from cxone_eventbridge.exceptions import SignatureVerificationError
from cxone_eventbridge.sandbox.certs import CertPaths, ensure_certificates

_OK_BODY = b'{"received":true}'
_FAIL_BODY = b'{"received":false}'
_REJECT_BODY = b'{"received":false,"error":"invalid signature"}'
_JSON = "application/json"
TOKEN_PATH = "/oauth/token"  # noqa: S105 -- a URL path, not a secret


@dataclass(frozen=True)
class ReceiverConfig:
    """How the receiver listens, where it records, and how it answers."""

    certs_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_RECEIVER_PORT
    record_path: Path | None = None
    secret: str | None = None  # whsec_...: verify signatures and record the verdict
    status: int = 200
    fail_rate: float = 0.0  # fraction of requests answered 503
    retry_after: float | None = None  # seconds, sent with every non-2xx answer
    latency_ms: float = 0.0
    reject_invalid_signatures: bool = False  # answer 401 when a signature does not verify
    clock: Callable[[], float] = field(default=time.time, repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)  # how latency_ms waits
    seed: int | None = None  # makes --fail-rate reproducible
    oauth_client_id: str | None = None  # serve POST /oauth/token and require its bearer tokens
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_token_ttl_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status: {self.status} is not an HTTP status code (100-599)")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate: {self.fail_rate} must be between 0 and 1")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms: {self.latency_ms} must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after: {self.retry_after} must not be negative")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        if self.secret is not None:
            try:
                signing.validate_signing_secret(self.secret)
            except ValueError as exc:
                raise ValueError(f"secret: {exc}") from None
        if self.reject_invalid_signatures and self.secret is None:
            raise ValueError("reject_invalid_signatures needs a secret to verify with")
        if (self.oauth_client_id is None) != (self.oauth_client_secret is None):
            raise ValueError("oauth_client_id and oauth_client_secret go together")
        if self.oauth_token_ttl_s <= 0:
            raise ValueError(f"oauth_token_ttl_s: {self.oauth_token_ttl_s} must be positive")


class _Handler:
    """The per-request logic, kept apart from the server's lifecycle."""

    def __init__(self, config: ReceiverConfig, record: IO[str] | None) -> None:
        self.config = config
        self.record = record
        self._random = random.Random(config.seed)  # noqa: S311 -- fault injection, not cryptography
        self.request_count = 0
        self.token_requests = 0
        self.token_status: int | None = None  # set to make the token endpoint fail with this status
        self._tokens: dict[str, float] = {}  # issued access token -> expiry (by the receiver's clock)
        retry_after = config.retry_after
        self._failure_headers = {"Retry-After": _format_seconds(retry_after)} if retry_after is not None else {}

    def _signature_valid(self, headers: Any, body: bytes) -> bool | None:
        if self.config.secret is None:
            return None
        try:
            signing.verify(self.config.secret, headers, body, now=self.config.clock())
        except SignatureVerificationError:
            return False
        return True

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method in ("GET", "HEAD"):
            return web.Response(body=b'{"status":"ok"}', content_type=_JSON)
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST, GET, HEAD"})
        body = await request.read()
        if self.config.oauth_client_id is not None:
            if request.path == TOKEN_PATH:
                return self._issue_token(request, body)
            if not self._token_valid(request.headers.get("Authorization", "")):
                return web.Response(
                    status=401,
                    body=b'{"received":false,"error":"invalid_token"}',
                    content_type=_JSON,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
        verdict = self._signature_valid(request.headers, body)
        self.request_count += 1
        if self.record is not None:
            line = {
                "time": dt.datetime.fromtimestamp(self.config.clock(), dt.UTC).isoformat(),
                "path": request.path,
                "headers": dict(request.headers),
                "body": body.decode("utf-8", errors="replace"),
                "signature_valid": verdict,
            }
            self.record.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.record.flush()
        if self.config.latency_ms:
            await self.config.sleep(self.config.latency_ms / 1000)
        if verdict is False and self.config.reject_invalid_signatures:
            return web.Response(status=401, body=_REJECT_BODY, content_type=_JSON)
        if self.config.fail_rate and self._random.random() < self.config.fail_rate:
            return web.Response(status=503, body=_FAIL_BODY, content_type=_JSON, headers=self._failure_headers)
        status = self.config.status
        if 200 <= status < 300:
            return web.Response(status=status, body=_OK_BODY, content_type=_JSON)
        return web.Response(status=status, body=_FAIL_BODY, content_type=_JSON, headers=self._failure_headers)

    def _issue_token(self, request: web.BaseRequest, body: bytes) -> web.Response:
        """RFC 6749 4.4 client credentials: a bearer token for the configured client, or the RFC's error."""
        self.token_requests += 1
        if self.token_status is not None:
            return web.Response(
                status=self.token_status, body=b'{"error":"temporarily_unavailable"}', content_type=_JSON
            )
        form = {key: values[-1] for key, values in parse_qs(body.decode("utf-8", errors="replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        if client_id != self.config.oauth_client_id or not hmac.compare_digest(
            (client_secret or "").encode(), (self.config.oauth_client_secret or "").encode()
        ):
            return _oauth_error(401, "invalid_client")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self.config.clock() + self.config.oauth_token_ttl_s
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.config.oauth_token_ttl_s}
        if "scope" in form:
            answer["scope"] = form["scope"]
        return web.Response(body=json.dumps(answer).encode(), content_type=_JSON, headers={"Cache-Control": "no-store"})

    def _token_valid(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        return expires is not None and self.config.clock() < expires

    def revoke_tokens(self) -> None:
        """Forget every issued token: the next request with one gets 401."""
        self._tokens.clear()


def _oauth_error(status: int, code: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"error": code}).encode(), content_type=_JSON)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class RunningReceiver:
    """A receiver that is listening; ``await stop()`` closes it and its record file."""

    def __init__(self, runner: web.ServerRunner, handler: _Handler, *, host: str, port: int, certs: CertPaths) -> None:
        self._runner = runner
        self._handler = handler
        self._record = handler.record
        self.host = host
        self.port = port
        self.certs = certs
        self.record_path = handler.config.record_path
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"https://{url_host}:{port}"

    @property
    def ca_path(self) -> Path:
        """The CA certificate clients must trust (``CXONE_CA_BUNDLE``)."""
        return self.certs.ca

    @property
    def request_count(self) -> int:
        """How many POSTs arrived so far (token requests not included)."""
        return self._handler.request_count

    @property
    def open_connections(self) -> int:
        """Client connections open now (a test waits for a client's to close before its loop ends)."""
        server = self._runner.server
        return len(server.connections) if server is not None else 0

    @property
    def token_requests(self) -> int:
        """How many token requests arrived so far (with ``oauth_client_id``)."""
        return self._handler.token_requests

    @property
    def token_url(self) -> str:
        """The token endpoint's URL (served with ``oauth_client_id``)."""
        return f"{self.url}{TOKEN_PATH}"

    def fail_token_requests(self, status: int | None) -> None:
        """Make the token endpoint answer ``status`` (None: issue tokens again)."""
        self._handler.token_status = status

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (the next delivery with one gets 401)."""
        self._handler.revoke_tokens()

    def records(self) -> list[dict[str, Any]]:
        """Every recorded request so far, parsed."""
        if self.record_path is None:
            raise RuntimeError("this receiver was started without a record file")
        with self.record_path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    async def stop(self) -> None:
        """Stop listening, end every client connection, and close the record file.

        The server's shutdown closes each connection with a TLS close that waits for the client's answer
        (up to 30 s); a client that does not answer (a stopped router's pool) left its socket open until
        garbage collection, after the event loop had ended (``ResourceWarning: unclosed transport``, seen in
        1 of 10 runs of ``test_dispatcher.py``). So what is still open after the shutdown is aborted."""
        server = self._runner.server
        transports = [conn.transport for conn in server.connections] if server is not None else []
        await self._runner.cleanup()
        for transport in transports:
            if transport is not None:
                transport.abort()  # also when closing: that is the TLS close still waiting for its answer
        await asyncio.sleep(0)  # one turn of the loop: the aborted sockets close in their connection_lost
        if self._record is not None and not self._record.closed:
            self._record.close()


def server_ssl_context(certs: CertPaths) -> ssl.SSLContext:
    """A TLS server context presenting the receiver's certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certs.cert, certs.key)
    return context


async def start_receiver(config: ReceiverConfig) -> RunningReceiver:
    """Issue or reuse the certificates (``ca.pem`` is on disk before this listens), then listen."""
    certs = await asyncio.to_thread(ensure_certificates, config.certs_dir)
    context = server_ssl_context(certs)
    record: IO[str] | None = None
    if config.record_path is not None:
        config.record_path.parent.mkdir(parents=True, exist_ok=True)
        record = config.record_path.open("a", encoding="utf-8", buffering=1 << 16)
    handler = _Handler(config, record)
    runner = web.ServerRunner(web.Server(handler, access_log=None), handle_signals=False, shutdown_timeout=1.0)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, ssl_context=context, backlog=1024)
        await site.start()
    except BaseException:
        await runner.cleanup()
        if record is not None:
            record.close()
        raise
    port = config.port
    for address in runner.addresses:
        port = int(address[1])
        break
    return RunningReceiver(runner, handler, host=config.host, port=port, certs=certs)
