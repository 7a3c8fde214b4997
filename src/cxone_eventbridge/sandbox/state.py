"""What every sandbox route shares: the store, the clients, the token issuer, limits, faults, the clock."""

from __future__ import annotations

import functools
import secrets
import ssl

from fastapi import Request

from cxone_eventbridge.sandbox.config import SandboxConfig
from cxone_eventbridge.sandbox.faults import FaultInjector
from cxone_eventbridge.sandbox.oauth import ClientRegistry, TokenIssuer
from cxone_eventbridge.sandbox.rate_limit import RateLimiter
from cxone_eventbridge.sandbox.store import TargetStore
from cxone_eventbridge.sandbox.tester import client_ssl_context
from cxone_eventbridge.ssrf import EgressPolicy, Resolver, system_resolver

_TOKEN_KEY_META = "token_signing_key"  # noqa: S105 -- the name of a metadata row


class SandboxState:
    """Everything the routes share; ``app.state.sandbox`` holds it."""

    def __init__(self, config: SandboxConfig, *, resolver: Resolver = system_resolver) -> None:
        self.config = config
        self.clock = config.clock
        self.store = TargetStore(config.db_path)
        self.clients = ClientRegistry(config.clients())
        key = bytes.fromhex(self.store.meta_setdefault(_TOKEN_KEY_META, secrets.token_hex(32)))
        self.issuer = TokenIssuer(key, ttl_s=config.token_ttl_s, clock=config.clock)
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.bucket_size, config.clock)
        rate = config.token_rate_limit_per_minute
        self.token_limiter = RateLimiter(rate, config.token_rate_limit_burst, config.clock) if rate else None
        self.faults = FaultInjector(config)
        self.egress = EgressPolicy.from_cidrs(config.allow_private)
        self.resolver = resolver

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Built on first use: loading the system CAs costs tens of milliseconds that most runs never need."""
        return client_ssl_context(str(self.config.ca_bundle) if self.config.ca_bundle else None)

    def close(self) -> None:
        self.store.close()


def state_of(request: Request) -> SandboxState:
    """The ``SandboxState`` of the app serving ``request``."""
    state: SandboxState = request.app.state.sandbox
    return state
