"""In-process sandbox apps for the sandbox's own tests: a fake clock and an httpx client over ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cxone_eventbridge.sandbox.app import create_app
from cxone_eventbridge.sandbox.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig

TARGETS = "/api/v2/integrations/targets"
ROUTES = "/api/v2/events/routes"


@dataclass
class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """An in-process sandbox and an httpx client bound to it, plus token helpers."""

    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    async def token(
        self, client_id: str = DEMO_CLIENT_ID, client_secret: str = DEMO_CLIENT_SECRET, scope: str | None = None
    ) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        response = await self.http.post("/oauth/token", data=data, auth=(client_id, client_secret))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(**kwargs)}"}

    @staticmethod
    def body(name: str = "orders", **fields: Any) -> dict[str, Any]:
        """A valid create body."""
        body: dict[str, Any] = {
            "name": name,
            "endpoint": "https://hooks.example.com/cxone",
            "authentication": {"type": "bearer", "value": "tok-123"},
        }
        body.update(fields)
        return body

    async def create(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.http.post(TARGETS, json=body, headers=await self.headers(**kwargs))


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Build in-process sandboxes with config overrides; closed at teardown."""
    made: list[Api] = []

    async def factory(**overrides: Any) -> Api:
        clock = overrides.pop("clock", None) or FakeClock()
        options: dict[str, Any] = {"port": 0, "rate_limit_per_minute": 1_000_000, **overrides}
        config = SandboxConfig(clock=clock, **options)
        app = create_app(config)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test")
        api = Api(app, http, clock)
        made.append(api)
        return api

    yield factory
    for api in made:
        await api.http.aclose()
        api.app.state.sandbox.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """A default in-process sandbox with a fake clock."""
    return await make_api()
