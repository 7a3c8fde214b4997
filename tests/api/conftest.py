"""Fixtures for the client's tests: a scripted control plane for wire oddities, and a recording sleep."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.config import Settings

BASE_URL = "https://cxone.test"
TOKEN_URL = f"{BASE_URL}/oauth/token"
CLIENT_SECRET = "client-secret-do-not-leak"
FIXED_NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _no_cxone_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read CXONE_* from the environment; a developer's shell must not change these tests."""
    for name in list(os.environ):
        if name.startswith("CXONE_"):
            monkeypatch.delenv(name)


@dataclass
class RecordingSleep:
    """An injected ``sleep`` that records the waits instead of sleeping."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class ScriptedControlPlane:
    """A MockTransport handler: a token endpoint plus, per "METHOD path", a queue of scripted replies.

    Once a queue is empty its last reply repeats. Used only for what a real server will not easily do on
    demand (an HTTP-date Retry-After, a connection reset), as the style guide asks.
    """

    replies: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    token_replies: list[Reply] = field(default_factory=list)
    expires_in: int = 3600
    issued: int = 0

    def script(self, key: str, *replies: Reply) -> None:
        self.replies[key] = list(replies)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_replies:
                return self._play(self.token_replies, request)
            self.issued += 1
            return httpx.Response(
                200,
                json={"access_token": f"token-{self.issued}", "token_type": "Bearer", "expires_in": self.expires_in},
            )
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        queue = self.replies.get(key)
        if not queue:
            return httpx.Response(404, json={"error": "not_found", "message": f"nothing scripted for {key}"})
        return self._play(queue, request)

    @staticmethod
    def _play(queue: list[Reply], request: httpx.Request) -> httpx.Response:
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    def api_requests(self, key: str) -> list[httpx.Request]:
        return [r for r in self.requests if f"{r.method} {r.url.path}" == key]


def basic_credentials(request: httpx.Request) -> str:
    """The ``id:secret`` pair an HTTP Basic header carries."""
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(encoded).decode()


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def json_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def target_json(**overrides: Any) -> dict[str, Any]:
    """A target as the server returns it (secrets as fingerprints)."""
    body: dict[str, Any] = {
        "id": "tgt_1",
        "name": "crm-webhook",
        "type": "webhook",
        "endpoint": "https://hooks.example.com/cxone",
        "authentication": {"type": "bearer", "value": None, "valueFingerprint": "sha256:0123456789abcdef"},
        "retryPolicy": {"maxRetries": 3, "backoffStrategy": "exponential", "timeoutMs": 5000},
        "eventFilters": [],
        "status": "pending",
    }
    body.update(overrides)
    return body


@pytest.fixture
def control_plane() -> ScriptedControlPlane:
    return ScriptedControlPlane()


@pytest.fixture
def recording_sleep() -> RecordingSleep:
    return RecordingSleep()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "client_id": "client-id",
        "client_secret": SecretStr(CLIENT_SECRET),
        "rate_limit_per_minute": 1_000_000.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(control_plane: ScriptedControlPlane, recording_sleep: RecordingSleep) -> Callable[..., CXoneClient]:
    """Clients wired to the scripted control plane, with a recording sleep, a fixed wall clock and rng 0.5."""

    def factory(**overrides: Any) -> CXoneClient:
        return CXoneClient.from_settings(
            make_settings(**overrides),
            transport=httpx.MockTransport(control_plane.handler),
            sleep=recording_sleep,
            wall_clock=FIXED_NOW.timestamp,
            rng=lambda: 0.5,
        )

    return factory
