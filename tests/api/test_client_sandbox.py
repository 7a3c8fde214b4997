"""The client against the real sandbox server: over a loopback socket, and in process through ASGITransport."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from cxone_eventbridge.api import IDEMPOTENCY_HEADER, TARGETS_PATH, CXoneClient
from cxone_eventbridge.config import GrantType
from cxone_eventbridge.exceptions import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotFoundError,
    PreconditionFailedError,
    UnprocessableEntityError,
)
from cxone_eventbridge.models import IntegrationTarget, TargetStatus
from cxone_eventbridge.observe.events import ObservedEvent, ObserverBus, TargetChanged
from cxone_eventbridge.signing import generate_signing_secret

BEARER_SECRET = "bearer-value-that-must-never-leak"


@dataclass
class TokenCounter:
    """An httpx event hook counting token requests and API requests as they leave the client."""

    token_url: str
    token_requests: list[httpx.Request] = field(default_factory=list)
    api_requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        if str(request.url) == self.token_url:
            self.token_requests.append(request)
        else:
            self.api_requests.append(request)


def _target(name: str, **overrides: Any) -> IntegrationTarget:
    data: dict[str, Any] = {
        "name": name,
        "endpoint": "https://hooks.example.com/cxone",
        "authentication": {"type": "bearer", "value": BEARER_SECRET},
    }
    data.update(overrides)
    return IntegrationTarget.model_validate(data)


def _client(sandbox: Any, *, in_process: bool = False, **kwargs: Any) -> CXoneClient:
    settings = sandbox.settings(**kwargs.pop("settings", {}))
    transport = httpx.ASGITransport(app=sandbox.app) if in_process else None
    return CXoneClient.from_settings(settings, transport=kwargs.pop("transport", transport), **kwargs)


@pytest.fixture(params=["loopback", "in_process"])
def in_process(request: pytest.FixtureRequest) -> bool:
    """Run the test over a real socket and again in process (httpx.ASGITransport on the sandbox app)."""
    return bool(request.param == "in_process")


async def test_client_credentials_are_sent(sandbox: Any, in_process: bool) -> None:
    """The token request carries the client's id and secret in HTTP Basic, and the sandbox accepts them."""
    counter = TokenCounter(sandbox.token_url)
    async with _client(sandbox, in_process=in_process, event_hooks={"request": [counter]}) as client:
        assert [t async for t in client.targets.list()] == []
    (token_request,) = counter.token_requests
    scheme, _, encoded = token_request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{sandbox.client_id}:{sandbox.client_secret}"
    assert counter.api_requests[0].headers["authorization"].startswith("Bearer ")


async def test_wrong_secret_is_refused_without_echoing_it(sandbox: Any) -> None:
    """A wrong client secret is an AuthenticationError from the token endpoint; the message omits the secret."""
    async with _client(sandbox, settings={"client_secret": "not-the-secret-xyz"}) as client:
        with pytest.raises(AuthenticationError, match="invalid_client") as caught:
            await client.targets.list_all()
    assert "not-the-secret-xyz" not in str(caught.value)


async def test_password_grant_with_access_keys(sandbox: Any) -> None:
    """The password grant (CXone access keys) gets a token from the sandbox and lists targets."""
    counter = TokenCounter(sandbox.token_url)
    settings = {"grant_type": GrantType.PASSWORD}
    async with _client(sandbox, settings=settings, event_hooks={"request": [counter]}) as client:
        assert await client.targets.list_all() == []
    form = {k: v[0] for k, v in parse_qs(counter.token_requests[0].content.decode()).items()}
    assert form["grant_type"] == "password"
    assert form["username"] == sandbox.access_key_id


async def test_single_flight_token_fetch_under_100_concurrent_calls(sandbox: Any) -> None:
    """100 concurrent calls on a cold cache, over loopback, cause exactly one token request."""
    counter = TokenCounter(sandbox.token_url)
    async with _client(sandbox, event_hooks={"request": [counter]}) as client:
        results = await asyncio.gather(*(client.targets.list_all() for _ in range(100)))
    assert results == [[]] * 100
    assert len(counter.token_requests) == 1
    assert len(counter.api_requests) == 100


async def test_401_refreshes_once_and_replays(sandbox_factory: Callable[..., Any]) -> None:
    """When the server expires the token early, a 401 fetches one new token and the call succeeds.

    The sandbox's clock jumps past the token's life while the client's does not, so only the 401 can tell
    the client; 20 concurrent calls that all get a 401 share one refresh.
    """
    now = [1_000_000.0]
    sandbox = sandbox_factory(clock=lambda: now[0], token_ttl_s=300)
    counter = TokenCounter(sandbox.token_url)
    statuses: list[int] = []

    async def on_response(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    hooks = {"request": [counter], "response": [on_response]}
    async with _client(sandbox, event_hooks=hooks, clock=lambda: 0.0) as client:
        await client.targets.list_all()
        assert len(counter.token_requests) == 1
        now[0] += 301
        assert await client.targets.list_all() == []
        assert len(counter.token_requests) == 2
        assert statuses[-3:] == [401, 200, 200]  # 401, the token, the replay
        now[0] += 301
        await asyncio.gather(*(client.targets.list_all() for _ in range(20)))
    assert len(counter.token_requests) == 3


async def test_retry_after_from_the_sandbox_is_honoured(sandbox_factory: Callable[..., Any]) -> None:
    """The sandbox's own rate limiter answers 429 with Retry-After; the client waits that long and succeeds.

    The injected sleep advances the sandbox's clock, so the wait is real to the server and instant here.
    """
    now = [5_000.0]
    sandbox = sandbox_factory(clock=lambda: now[0], rate_limit_per_minute=30, rate_limit_burst=1)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async with _client(sandbox, sleep=sleep) as client:
        await client.targets.list_all()
        await client.targets.list_all()  # the bucket is empty: 429, Retry-After: 2
    assert waits == [2.0]


async def test_injected_429_burst_is_retried(sandbox_factory: Callable[..., Any]) -> None:
    """Two forced 429s with ``Retry-After: 3`` are waited out (3 s each), then the call succeeds."""
    sandbox = sandbox_factory(fault_429_burst=2, fault_retry_after_s=3)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with _client(sandbox, sleep=sleep) as client:
        assert await client.targets.list_all() == []
    assert waits == [3.0, 3.0]


class AnswerLosingTransport(httpx.AsyncBaseTransport):
    """Forwards to the real sandbox, but loses the first create's answer after the server committed it.

    This is the case idempotency keys exist for: the client cannot know whether its create happened.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, failure: str) -> None:
        self._inner = inner
        self._failure = failure
        self.create_keys: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == TARGETS_PATH:
            self.create_keys.append(request.headers[IDEMPOTENCY_HEADER])
            if len(self.create_keys) == 1:
                await response.aread()
                await response.aclose()
                if self._failure == "reset":
                    raise httpx.ReadError("connection reset after the server answered", request=request)
                return httpx.Response(503, json={"error": "bad_gateway", "message": "proxy lost the answer"})
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("failure", ["reset", "503"])
async def test_create_retried_after_a_lost_answer_makes_one_target(sandbox: Any, failure: str) -> None:
    """A create whose answer is lost (reset or 5xx) is retried with the same key and makes exactly one target."""
    transport = AnswerLosingTransport(httpx.AsyncHTTPTransport(), failure)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with _client(sandbox, transport=transport, sleep=sleep) as client:
        created = await client.targets.create(_target("lost-answer"))
        everything = await client.targets.list_all()
    assert len(transport.create_keys) == 2
    assert transport.create_keys[0] == transport.create_keys[1]
    assert len(waits) == 1
    assert [t.id for t in everything] == [created.id]


async def test_422_field_errors_use_wire_paths(sandbox: Any, in_process: bool) -> None:
    """The sandbox's 422 arrives as UnprocessableEntityError naming ``retryPolicy.maxRetries``."""
    async with _client(sandbox, in_process=in_process) as client:
        created = await client.targets.create(_target("patch-me"))
        assert created.id is not None
        with pytest.raises(UnprocessableEntityError) as caught:
            await client.targets.patch(created.id, {"retryPolicy": {"maxRetries": 11}})
    fields = [error.field for error in caught.value.errors]
    assert "retryPolicy.maxRetries" in fields
    assert caught.value.status_code == 422


async def test_secrets_are_absent_from_repr_logs_and_reads(sandbox: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Secrets are sent on create, but never appear in logs, reprs or read-backs; only routes() returns them."""
    caplog.set_level(logging.DEBUG)
    signing = generate_signing_secret()
    async with _client(sandbox) as client:
        created = await client.targets.create(_target("secretive", signingSecret=signing))
        assert created.id is not None
        fetched = await client.targets.get(created.id)
        listed = await client.targets.list_all()
        routes = await client.routes()
    texts = [caplog.text, repr(created), repr(fetched), repr(listed), json.dumps(fetched.to_wire()), repr(client)]
    for text in texts:
        assert BEARER_SECRET not in text
        assert signing not in text
        assert sandbox.client_secret not in text
    assert fetched.authentication.value is None
    assert fetched.authentication.value_fingerprint
    (route,) = routes.items
    assert route.authentication.value is not None
    assert route.authentication.value.get_secret_value() == BEARER_SECRET
    assert route.signing_secret is not None
    assert route.signing_secret.get_secret_value() == signing


async def test_unresolved_secret_reference_is_refused_before_sending(sandbox: Any) -> None:
    """A ``${env:NAME}`` left unresolved is an InputError naming the field; nothing is sent."""
    counter = TokenCounter(sandbox.token_url)
    async with _client(sandbox, event_hooks={"request": [counter]}) as client:
        with pytest.raises(InputError, match=r"authentication.value is the unresolved reference \$\{env:CRM\}"):
            await client.targets.create(_target("ref", authentication={"type": "bearer", "value": "${env:CRM}"}))
    assert counter.api_requests == []


async def test_crud_round_trip_publishes_changes(sandbox: Any, in_process: bool) -> None:
    """Create, page through, find, update, patch and delete, with a TargetChanged record for each change."""
    seen: list[ObservedEvent] = []
    bus = ObserverBus()
    bus.subscribe(seen.append)
    counter = TokenCounter(sandbox.token_url)
    async with _client(sandbox, in_process=in_process, bus=bus, event_hooks={"request": [counter]}) as client:
        made = [await client.targets.create(_target(f"t{i}")) for i in range(5)]
        counter.api_requests.clear()
        listed = [t async for t in client.targets.list(page_size=2)]
        assert [t.name for t in listed] == ["t0", "t1", "t2", "t3", "t4"]
        assert len(counter.api_requests) == 3  # pages of 2, 2 and 1
        found = await client.targets.find_by_name("t3")
        assert found is not None
        assert found.id == made[3].id
        assert await client.targets.find_by_name("nope") is None
        target_id = made[0].id
        assert target_id is not None
        updated = await client.targets.update(target_id, _target("t0-renamed", description="renamed"))
        assert (updated.name, updated.description) == ("t0-renamed", "renamed")
        patched = await client.targets.patch(target_id, {"retryPolicy": {"maxRetries": 7}})
        assert patched.retry_policy.max_retries == 7
        assert (await client.targets.resolve("t0-renamed")).id == target_id
        with pytest.raises(ConflictError):
            await client.targets.create(_target("t1"))
        with pytest.raises(PreconditionFailedError):
            await client.targets.update(target_id, _target("t0-renamed"), if_match='"stale-etag"')
        await client.targets.delete(target_id, name="t0-renamed")
        with pytest.raises(NotFoundError):
            await client.targets.get(target_id)
        with pytest.raises(NotFoundError, match="no target has the id or name 't0-renamed'"):
            await client.targets.resolve("t0-renamed")
    changes = [(e.action, e.target) for e in seen if isinstance(e, TargetChanged)]
    assert changes == [
        *[("create", f"t{i}") for i in range(5)],
        ("update", "t0-renamed"),
        ("patch", "t0-renamed"),
        ("delete", "t0-renamed"),
    ]


async def test_target_test_passed_and_failed(sandbox: Any, https_receiver: Callable[..., Awaitable[Any]]) -> None:
    """A test against a healthy receiver passes; against a failing one it is a failed result, not an error."""
    healthy = await https_receiver()
    failing = await https_receiver(status=500)
    seen: list[ObservedEvent] = []
    bus = ObserverBus()
    bus.subscribe(seen.append)
    async with _client(sandbox, bus=bus) as client:
        good, good_result = await client.targets.create_and_test(_target("good", endpoint=f"{healthy.url}/hook"))
        bad, bad_result = await client.targets.create_and_test(_target("bad", endpoint=f"{failing.url}/hook"))
    assert good_result.passed
    assert good.status is TargetStatus.ACTIVE
    assert not bad_result.passed
    assert bad_result.status_code == 500
    assert bad.status is TargetStatus.FAILED
    assert len(healthy.records()) == 1
    assert len(failing.records()) == 1  # never retried: one synthetic event each
    tests = [e.details["result"] for e in seen if isinstance(e, TargetChanged) and e.action == "test"]
    assert tests == ["passed", "failed"]


async def test_discovery_against_the_sandbox(sandbox: Any) -> None:
    """With only CXONE_DISCOVERY_URL and CXONE_TENANT_ID, the sandbox's discovery documents lead to its API."""
    settings = {"base_url": None, "token_url": None, "discovery_url": sandbox.base_url, "tenant_id": "tenant-1"}
    async with _client(sandbox, settings=settings) as client:
        assert client.token_url == sandbox.token_url
        assert client.base_url == sandbox.base_url
        assert await client.targets.list_all() == []


async def test_versioned_read_guards_a_read_modify_write(sandbox: Any, in_process: bool) -> None:
    """get_versioned's ETag lets an update succeed once; after another writer's change the same ETag gets 412."""
    async with _client(sandbox, in_process=in_process) as client:
        made = await client.targets.create(_target("versioned"))
        assert made.id is not None
        read = await client.targets.get_versioned(made.id)
        assert read.target.id == made.id
        assert read.etag
        updated = await client.targets.update(
            made.id, _target("versioned", description="first writer"), if_match=read.etag
        )
        assert updated.description == "first writer"
        with pytest.raises(PreconditionFailedError):
            await client.targets.update(made.id, _target("versioned", description="stale writer"), if_match=read.etag)
        assert (await client.targets.get(made.id)).description == "first writer"
