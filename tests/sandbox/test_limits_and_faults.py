"""Per-client token buckets (429 with a usable Retry-After) and injected faults."""

from __future__ import annotations

import pytest

from cxone_eventbridge.sandbox.config import SandboxClient, SandboxConfig
from cxone_eventbridge.sandbox.faults import FaultInjector
from cxone_eventbridge.sandbox.rate_limit import RateLimiter, retry_after_header

TARGETS = "/api/v2/integrations/targets"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    """Capacity 3 at 60/min: three at once, then one per second, with the wait reported."""
    clock = Clock()
    limiter = RateLimiter(60, 3, clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is None  # another client has its own bucket


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_rounds_up_to_whole_seconds(wait, header) -> None:
    """Retry-After is whole seconds, rounded up, never 0."""
    assert retry_after_header(wait) == header


async def test_rate_limit_answers_429_with_retry_after_per_client(make_api) -> None:
    """Past the bucket a client gets 429 with Retry-After; after waiting that long it is served; others are not affected."""
    api = await make_api(rate_limit_per_minute=6, rate_limit_burst=2, extra_clients=(SandboxClient("b", "b-secret"),))
    headers = await api.headers()
    assert [(await api.http.get(TARGETS, headers=headers)).status_code for _ in range(2)] == [200, 200]
    limited = await api.http.get(TARGETS, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert retry_after == 10
    other = await api.headers(client_id="b", client_secret="b-secret")
    assert (await api.http.get(TARGETS, headers=other)).status_code == 200
    api.clock.advance(retry_after)
    assert (await api.http.get(TARGETS, headers=headers)).status_code == 200


async def test_fault_rate_one_gives_marked_5xx_on_api_routes_only(make_api) -> None:
    """With fault_rate 1 every API call is an injected 5xx marked as such, while tokens still work."""
    api = await make_api(fault_rate=1.0, seed=3)
    headers = await api.headers()  # the token endpoint is never faulted
    statuses = set()
    for _ in range(10):
        response = await api.http.get(TARGETS, headers=headers)
        assert response.headers["X-Sandbox-Fault"] == "injected"
        statuses.add(response.status_code)
    assert statuses <= {500, 502, 503, 504}
    assert len(statuses) > 1


async def test_forced_429_bursts_repeat_every_period(make_api) -> None:
    """fault_429_burst=2 of every 3 requests: 429, 429, 200, 429, 429, 200, each 429 with Retry-After."""
    api = await make_api(fault_429_burst=2, fault_429_period=3, fault_retry_after_s=2)
    headers = await api.headers()
    responses = [await api.http.get(TARGETS, headers=headers) for _ in range(6)]
    assert [r.status_code for r in responses] == [429, 429, 200, 429, 429, 200]
    assert responses[0].headers["Retry-After"] == "2"


def test_a_single_burst_without_period() -> None:
    """With no period only the first N requests are refused."""
    injector = FaultInjector(SandboxConfig(fault_429_burst=2))
    assert [f.status if f else None for f in (injector.next_fault() for _ in range(4))] == [429, 429, None, None]


async def test_latency_is_added_to_api_requests(make_api) -> None:
    """latency_ms makes every API answer wait that long first (on the injected sleep, not the wall clock)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    api = await make_api(latency_ms=50, sleep=sleep)
    headers = await api.headers()
    assert waits == []  # the token endpoint is not delayed
    assert (await api.http.get(TARGETS, headers=headers)).status_code == 200
    assert waits == [0.05]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"fault_rate": 2}, "fault_rate"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"token_ttl_s": 0}, "token_ttl_s"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"rate_limit_burst": 0}, "rate_limit_burst"),
        ({"fault_429_burst": 5, "fault_429_period": 2}, "fault_429_burst"),
        ({"client_secret": ""}, "client_id and client_secret"),
    ],
)
def test_invalid_config_names_the_option(options, field) -> None:
    """A bad SandboxConfig raises ValueError starting with the option's name."""
    with pytest.raises(ValueError, match=f"^{field}"):
        SandboxConfig(**options)
