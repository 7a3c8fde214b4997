"""The client against a control plane's real faults: writes committed with their answers lost, a rate-limited token endpoint."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from cxone_eventbridge.api import CXoneClient
from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.signing import generate_signing_secret

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TARGETS = "/api/v2/integrations/targets"


class FakeTime:
    """The sandbox's clock, moved by the client's sleeps (so a Retry-After is waited out without waiting)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _target(name: str = "orders") -> IntegrationTarget:
    return IntegrationTarget(name=name, endpoint="https://hooks.example.com/orders", signing_secret=SecretStr(OLD))


async def test_every_write_whose_answer_is_lost_is_retried_and_done_once(sandbox_factory: Any) -> None:
    """Create, rotate, update, patch and delete each lose their first answer; each is still done exactly once."""
    time = FakeTime()
    sandbox = sandbox_factory(fault_lost_answer_every=2, clock=time)
    new = generate_signing_secret()
    async with CXoneClient.from_settings(sandbox.settings(), sleep=time.sleep, wall_clock=time) as client:
        created = await client.targets.create(_target())  # answer lost, retried with the same Idempotency-Key
        assert created.id is not None
        assert [t.name for t in await client.targets.list_all()] == ["orders"]

        rotated = await client.targets.rotate_secret(created.id, secret=new, grace_period_s=3600)
        assert rotated.target.previous_signing_secret is not None
        (route,) = (await client.routes()).items
        assert route.signing_secret is not None
        assert route.signing_secret.get_secret_value() == new
        # Done twice, the second rotation would have made the new secret the "previous" one: the old one,
        # which receivers still hold, stays valid instead.
        assert route.previous_signing_secret is not None
        assert route.previous_signing_secret.secret is not None
        assert route.previous_signing_secret.secret.get_secret_value() == OLD

        updated = await client.targets.update(created.id, _target().model_copy(update={"description": "v2"}))
        assert updated.description == "v2"
        patched = await client.targets.patch(created.id, {"description": "v3"})
        assert patched.description == "v3"
        await client.targets.delete(created.id, name="orders")  # the retry's 404 means "already gone"
        assert await client.targets.list_all() == []
    assert len(time.waits) == 5  # one retry per write
    assert sandbox.state.faults.lost_answers == 5


async def test_without_an_idempotency_key_a_lost_create_answer_makes_a_retry_conflict(sandbox_factory: Any) -> None:
    """What the key prevents: a bare retried POST meets the target its lost attempt created (409)."""
    sandbox = sandbox_factory(fault_lost_answer_every=2)
    body = {"name": "bare", "endpoint": "https://hooks.example.com/bare"}
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        grant = {"grant_type": "client_credentials"}
        token = await http.post("/oauth/token", data=grant, auth=(sandbox.client_id, sandbox.client_secret))
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        lost = await http.post(TARGETS, json=body)
        assert lost.status_code == 504
        assert lost.headers["X-Sandbox-Fault"] == "lost-answer"
        again = await http.post(TARGETS, json=body)
        assert again.status_code == 409


async def test_a_rate_limited_token_endpoint_is_waited_out(sandbox_factory: Any) -> None:
    """The token endpoint's 429 with Retry-After is waited out as asked, then the request succeeds."""
    time = FakeTime()
    sandbox = sandbox_factory(token_rate_limit_per_minute=6, token_rate_limit_burst=1, clock=time)
    async with CXoneClient.from_settings(sandbox.settings(), sleep=time.sleep, wall_clock=time) as first:
        await first.targets.list_all()
    async with CXoneClient.from_settings(sandbox.settings(), sleep=time.sleep, wall_clock=time) as second:
        assert await second.targets.list_all() == []
    assert time.waits == [10.0]  # one token per 10 s; the second client's token request waited once
