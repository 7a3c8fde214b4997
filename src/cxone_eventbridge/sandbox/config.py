"""The sandbox server's configuration: who may log in, how it limits and misbehaves, where it keeps state.

The demo credentials guard nothing real (the sandbox holds only what a developer typed into it); they are
printed at start so a developer can copy them. Time is a callable so tests move it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cxone_eventbridge.defaults import DEFAULT_SANDBOX_PORT
from cxone_eventbridge.ssrf import EgressPolicy

SCOPE_READ = "integration:target:read"
SCOPE_WRITE = "integration:target:write"
SCOPE_TEST = "integration:target:test"
SCOPE_ROUTES = "event:route:read"
ALL_SCOPES = frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_TEST, SCOPE_ROUTES})

DEMO_CLIENT_ID = "cxeb-sandbox-client"
DEMO_CLIENT_SECRET = "cxeb-sandbox-secret"  # noqa: S105 -- printed demo credential of a local sandbox
DEMO_ACCESS_KEY_ID = "cxeb-sandbox-access-key"
DEMO_ACCESS_KEY_SECRET = "cxeb-sandbox-access-secret"  # noqa: S105 -- printed demo credential of a local sandbox

MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class SandboxClient:
    """One OAuth2 client: its own tenant, the scopes it may be granted, and an optional access key."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: frozenset[str] = ALL_SCOPES
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret must not be empty")
        if unknown := self.scopes - ALL_SCOPES:
            raise ValueError(f"scopes: unknown scope(s) {', '.join(sorted(unknown))}")
        if (self.access_key_id is None) != (self.access_key_secret is None):
            raise ValueError("access_key_id and access_key_secret go together")


@dataclass(frozen=True)
class SandboxConfig:
    """Everything ``create_app`` needs; the CLI builds one from its options."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_SANDBOX_PORT
    db_path: Path | None = None  # None: in memory, gone at exit
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = field(default=DEMO_CLIENT_SECRET, repr=False)
    access_key_id: str = DEMO_ACCESS_KEY_ID
    access_key_secret: str = field(default=DEMO_ACCESS_KEY_SECRET, repr=False)
    extra_clients: tuple[SandboxClient, ...] = ()
    token_ttl_s: int = 3600
    rate_limit_per_minute: float = 100.0
    rate_limit_burst: int | None = None  # bucket size; None: a quarter of a minute's allowance (at least 1)
    # CIDR ranges that test calls may reach despite the SSRF guard (the router's --allow-private, same meaning)
    allow_private: tuple[str, ...] = ()
    ca_bundle: Path | None = None  # extra CAs trusted by the test call (the local receiver's ca.pem)
    fault_rate: float = 0.0  # fraction of API requests answered with a random 5xx
    latency_ms: float = 0.0  # added to every API request
    fault_429_burst: int = 0  # forced 429s: the first N requests of every period...
    fault_429_period: int = 0  # ...of this many requests (0: only the first N requests ever)
    fault_retry_after_s: int = 1
    # A real control plane's faults: the answer of every Nth write (POST/PUT/PATCH/DELETE) is lost after
    # the write was committed (answered 504, as a gateway whose upstream went silent; 0: never) ...
    fault_lost_answer_every: int = 0
    # ... and a rate limit on the token endpoint (requests per minute over all clients; None: none).
    token_rate_limit_per_minute: float | None = None
    token_rate_limit_burst: int = 1
    max_body_bytes: int = MAX_BODY_BYTES
    clock: Callable[[], float] = field(default=time.time, repr=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)  # how latency_ms waits
    seed: int | None = None  # makes fault injection reproducible

    def __post_init__(self) -> None:
        if self.token_ttl_s < 1:
            raise ValueError(f"token_ttl_s: {self.token_ttl_s} must be at least 1 second")
        if self.rate_limit_per_minute <= 0:
            raise ValueError(f"rate_limit_per_minute: {self.rate_limit_per_minute} must be positive")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError(f"rate_limit_burst: {self.rate_limit_burst} must be at least 1")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate: {self.fault_rate} must be between 0 and 1")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms: {self.latency_ms} must not be negative")
        try:
            EgressPolicy.from_cidrs(self.allow_private)
        except ValueError as exc:
            raise ValueError(f"allow_private: {exc}") from exc
        if self.fault_429_burst < 0 or self.fault_429_period < 0:
            raise ValueError("fault_429_burst and fault_429_period must not be negative")
        if self.fault_429_period and self.fault_429_burst > self.fault_429_period:
            raise ValueError("fault_429_burst must not exceed fault_429_period")
        if self.fault_lost_answer_every < 0:
            raise ValueError(f"fault_lost_answer_every: {self.fault_lost_answer_every} must not be negative")
        if self.token_rate_limit_per_minute is not None and self.token_rate_limit_per_minute <= 0:
            raise ValueError(f"token_rate_limit_per_minute: {self.token_rate_limit_per_minute} must be positive")
        if self.token_rate_limit_burst < 1:
            raise ValueError(f"token_rate_limit_burst: {self.token_rate_limit_burst} must be at least 1")
        if self.fault_retry_after_s < 0:
            raise ValueError(f"fault_retry_after_s: {self.fault_retry_after_s} must not be negative")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes: {self.max_body_bytes} must be at least 1024")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        self.clients()  # validates the credentials

    @property
    def bucket_size(self) -> int:
        """How many requests a client may burst before the per-minute rate applies."""
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, int(self.rate_limit_per_minute / 4))

    def clients(self) -> tuple[SandboxClient, ...]:
        """The primary client (with the access key for the password grant) and any extra ones."""
        primary = SandboxClient(
            self.client_id,
            self.client_secret,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
        )
        return (primary, *self.extra_clients)
