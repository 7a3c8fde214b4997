"""``CXoneClient``: the async control-plane client, composed once from ``Settings``.

::

    async with CXoneClient.from_settings(settings) as client:
        target = await client.targets.create(IntegrationTarget(...))
        async for t in client.targets.list():
            ...

It owns one ``httpx.AsyncClient`` (connection pool, CA bundle, ``HTTPS_PROXY`` from the environment via
``trust_env``) with the OAuth2 flow as its auth, a rate limiter, and the retrying request function.
Clocks, ``sleep`` and the transport are injectable, so tests drive it without sleeping or patching.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

import httpx

from cxone_eventbridge import __version__
from cxone_eventbridge.api._auth import ClientCredentials, OAuth2Auth
from cxone_eventbridge.api._discovery import discover
from cxone_eventbridge.api._errors import parse_model
from cxone_eventbridge.api._http import RequestOptions, RequestSender, RetryConfig
from cxone_eventbridge.api._rate_limit import RateLimiter
from cxone_eventbridge.api._targets import TargetsResource
from cxone_eventbridge.config import Settings
from cxone_eventbridge.exceptions import ConfigurationError
from cxone_eventbridge.models import RoutesTable
from cxone_eventbridge.observe.events import ObserverBus, TargetChanged

ROUTES_PATH = "/api/v2/events/routes"
EventHook = Callable[..., Awaitable[Any]]


class ClientOptions(TypedDict, total=False):
    """What ``CXoneClient.from_settings`` passes on to the constructor (see it for the defaults)."""

    bus: ObserverBus | None
    transport: httpx.AsyncBaseTransport | None
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    rng: Callable[[], float]
    event_hooks: Mapping[str, Sequence[EventHook]] | None


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"CXONE_CA_BUNDLE={ca_bundle} cannot be loaded: {exc}") from exc


class CXoneClient:
    """The control-plane API: ``client.targets`` and ``client.routes()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: ObserverBus | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = None,
    ) -> None:
        if not settings.base_url and not settings.discovery_url:
            raise ConfigurationError("CXONE_BASE_URL is not set (nor CXONE_DISCOVERY_URL)")
        self._settings = settings
        self._credentials = ClientCredentials(
            grant_type=settings.grant_type,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            access_key_id=settings.access_key_id,
            access_key_secret=settings.access_key_secret,
            scopes=settings.scopes,
        )
        self._credentials.check()
        self._clock = clock
        self._wall_clock = wall_clock
        self._bus = bus
        self._http = httpx.AsyncClient(
            base_url=settings.base_url or "",
            transport=transport,
            verify=_ssl_context(str(settings.ca_bundle) if settings.ca_bundle else None),
            trust_env=True,  # HTTPS_PROXY / NO_PROXY, as every corporate network needs
            timeout=settings.timeout_s,
            headers={"User-Agent": f"cxone-eventbridge/{__version__}", "Accept": "application/json"},
            event_hooks={name: list(hooks) for name, hooks in (event_hooks or {}).items()},
        )
        self._sender = RequestSender(
            self._http,
            retry=RetryConfig(max_attempts=settings.max_attempts, max_retry_wait_s=settings.max_retry_wait_s),
            limiter=RateLimiter(settings.rate_limit_per_minute, clock=clock, sleep=sleep),
            sleep=sleep,
            now=lambda: datetime.fromtimestamp(wall_clock(), UTC),
            rng=rng,
        )
        self._ready_lock = asyncio.Lock()
        self._auth: OAuth2Auth | None = None
        if settings.base_url and (token_url := settings.resolved_token_url) and not self._wants_discovery():
            self._use_auth(token_url)
        self.targets = TargetsResource(self)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Unpack[ClientOptions]) -> CXoneClient:
        """The client for these settings (the usual way to make one); ``options`` as the constructor's."""
        return cls(settings, **options)

    def __repr__(self) -> str:
        return f"CXoneClient(base_url={self.base_url!r}, grant_type={self._settings.grant_type.value!r})"

    @property
    def base_url(self) -> str | None:
        """The API base (after discovery, if discovery supplied it)."""
        return str(self._http.base_url).rstrip("/") or None

    @property
    def token_url(self) -> str | None:
        return self._auth.token_url if self._auth else None

    # async-with as RouterClient (router/api_client.py) has it too: a shared base for these three methods
    # would tie the control-plane client to the router's, and this one's entry also runs discovery.
    async def __aenter__(self) -> Self:
        await self._ensure_ready()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def routes(self) -> RoutesTable:
        """The routing table: every target with its filters, retry policy and secrets (routers only)."""
        response = await self.request("GET", ROUTES_PATH)
        return parse_model(RoutesTable, response)

    async def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send an authenticated API request through the retry, pacing and error-conversion layer
        (``RequestSender.request``: its options and their defaults)."""
        await self._ensure_ready()
        return await self._sender.request(method, path, **options)

    def publish_change(
        self, action: str, *, target: str, target_id: str | None, details: dict[str, Any] | None = None
    ) -> None:
        """Tell the observers (audit log, metrics) about a control-plane change."""
        if self._bus is not None:
            event = TargetChanged(
                action=action, target=target, target_id=target_id, at=self._wall_clock(), details=details or {}
            )
            self._bus.publish(event)

    def _wants_discovery(self) -> bool:
        settings = self._settings
        return bool(settings.discovery_url) and not (settings.base_url and settings.token_url)

    def _use_auth(self, token_url: str) -> None:
        self._auth = OAuth2Auth(token_url, self._credentials, clock=self._clock)
        self._http.auth = self._auth

    async def _ensure_ready(self) -> None:
        if self._auth is not None:
            return
        async with self._ready_lock:
            if self._auth is not None:
                return
            settings = self._settings
            assert settings.discovery_url is not None  # __init__ set auth up otherwise
            found = await discover(
                self._sender,
                settings.discovery_url,
                tenant_id=settings.tenant_id,
                need_token_url=not settings.token_url,
                need_base_url=not settings.base_url,
            )
            if found.base_url:
                self._http.base_url = httpx.URL(found.base_url)
            token_url = settings.token_url or found.token_url
            assert token_url is not None
            self._use_auth(token_url)
