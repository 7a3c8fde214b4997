"""OAuth client-credentials targets: one token request for many deliveries, one refresh on expiry or 401, failures."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cxone_eventbridge.models import IntegrationTarget
from cxone_eventbridge.observe.reasons import FailureReason, dead_letter_reason, failure_reason
from cxone_eventbridge.router.delivery import create_transport, ssl_context_for
from cxone_eventbridge.router.queue import DeadLetterReason
from cxone_eventbridge.router.target_tokens import TargetTokens, TokenFailure, _token_of

from ..clocks import ShiftedClock
from ..waiting import until
from .conftest import LOOPBACK, RouterFactory, fast_options

CLIENT_ID = "router-client"
CLIENT_SECRET = "router-client-secret-do-not-print"


def oauth_target(
    receiver: Any, *, name: str = "crm", secret: str = CLIENT_SECRET, max_retries: int = 3
) -> IntegrationTarget:
    """A target whose endpoint wants a token from the receiver's own token endpoint."""
    return IntegrationTarget.model_validate(
        {
            "name": name,
            "endpoint": f"{receiver.url}/hooks/{name}",
            "authentication": {
                "type": "oauth_client_credentials",
                "oauth": {
                    "tokenUrl": receiver.token_url,
                    "clientId": CLIENT_ID,
                    "clientSecret": secret,
                    "scopes": ["events:write"],
                    "tokenFormFields": {"audience": "https://api.example.com"},
                    "tokenHeaders": {"X-Tenant": "t-1"},
                },
            },
            "retryPolicy": {"maxRetries": max_retries},
        }
    )


async def _oauth_receiver(https_receiver: Any, clock: Any = time.time, ttl_s: float = 3600.0) -> Any:
    return await https_receiver(
        oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET, oauth_token_ttl_s=ttl_s, clock=clock
    )


async def _stop_and_wait_for_closed_connections(router: Any, receiver: Any) -> None:
    """Stop the router, then wait until the receiver saw its ~100 connections close.

    The HTTP client closes its sockets from its own thread a moment after it is closed; a socket still
    open when the test's event loop ends would be reported as leaked by the receiver's side.
    """
    await router.stop(deadline_s=1.0)
    await until(lambda: receiver.open_connections == 0)  # no event fires when a peer closes


async def test_a_hundred_concurrent_deliveries_cause_one_token_request(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """100 deliveries in flight at once to an OAuth-protected receiver: one token request, all delivered."""
    receiver = await _oauth_receiver(https_receiver)
    options = fast_options(max_in_flight=256, per_target_in_flight=128, prefetch=0)
    router, ledger = await make_router([oauth_target(receiver)], ca_path=receiver.ca_path, options=options)
    await router.ingest([{"id": f"e{i}"} for i in range(100)])
    await ledger.wait_for(100)
    assert len(ledger.delivered) == 100
    assert receiver.token_requests == 1
    assert receiver.request_count == 100
    headers = {k.lower(): v for k, v in receiver.records()[0]["headers"].items()}
    assert headers["authorization"].startswith("Bearer ")
    await _stop_and_wait_for_closed_connections(router, receiver)


async def test_an_expired_token_mid_run_causes_one_refresh(https_receiver: Any, make_router: RouterFactory) -> None:
    """When the token's lifetime ends between two batches, the next 100 deliveries share one new token."""
    clock = ShiftedClock()
    receiver = await _oauth_receiver(https_receiver, clock=clock, ttl_s=600)
    options = fast_options(max_in_flight=256, per_target_in_flight=128, prefetch=0)
    router, ledger = await make_router([oauth_target(receiver)], ca_path=receiver.ca_path, options=options, clock=clock)
    await router.ingest([{"id": f"a{i}"} for i in range(100)])
    await ledger.wait_for(100)
    assert receiver.token_requests == 1
    clock.offset = 601  # the token has expired by both clocks
    await router.ingest([{"id": f"b{i}"} for i in range(100)])
    await ledger.wait_for(200)
    assert len(ledger.delivered) == 200
    assert receiver.token_requests == 2
    assert receiver.request_count == 200  # no delivery was sent with the expired token
    await _stop_and_wait_for_closed_connections(router, receiver)


async def test_a_refused_token_is_refreshed_once_and_the_attempt_retried(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """Tokens revoked by the server: the deliveries' 401s cause one refresh, and each attempt is retried at once."""
    receiver = await _oauth_receiver(https_receiver)
    options = fast_options(max_in_flight=256, per_target_in_flight=128, prefetch=0)
    router, ledger = await make_router(
        [oauth_target(receiver, max_retries=0)], ca_path=receiver.ca_path, options=options
    )
    await router.ingest([{"id": "warm"}])
    await ledger.wait_for(1)
    receiver.revoke_tokens()
    await router.ingest([{"id": f"e{i}"} for i in range(50)])
    await ledger.wait_for(51)
    assert len(ledger.delivered) == 51  # max_retries 0: every one made it within its first attempt
    assert receiver.token_requests == 2
    await _stop_and_wait_for_closed_connections(router, receiver)


async def test_token_endpoint_outage_is_retried_then_dead_lettered_auth_failed(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """A 503 from the token endpoint is retried like a delivery failure; spent, the reason is auth_failed."""
    receiver = await _oauth_receiver(https_receiver)
    receiver.fail_token_requests(503)
    router, ledger = await make_router([oauth_target(receiver, max_retries=2)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    (dead,) = ledger.dead.values()
    assert dead.reason == DeadLetterReason.AUTH_FAILED
    assert dead.attempts == 3
    assert dead.last_error == "token endpoint answered HTTP 503 (temporarily_unavailable)"
    assert receiver.request_count == 0  # nothing reached the target without a token
    assert receiver.token_requests == 3
    assert dead_letter_reason(dead.reason, dead.last_status, dead.last_error) is FailureReason.AUTH_FAILED
    (letter,) = await router.queue.dead_letters()
    assert letter.reason == "auth_failed"
    receiver.fail_token_requests(None)
    assert await router.queue.replay(target="crm") == 1  # replayable once the token endpoint is back
    await ledger.wait_until(lambda: len(ledger.delivered) == 1)


async def test_a_wrong_client_secret_dead_letters_at_once_without_the_secret_anywhere(
    https_receiver: Any, make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """invalid_client is permanent: dead-lettered auth_failed on the first attempt; no secret or token in errors."""
    receiver = await _oauth_receiver(https_receiver)
    wrong = "wrong-secret-must-not-leak"
    router, ledger = await make_router([oauth_target(receiver, secret=wrong, max_retries=5)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    (dead,) = ledger.dead.values()
    assert dead.reason == DeadLetterReason.AUTH_FAILED
    assert dead.attempts == 1
    assert dead.last_error == "token endpoint answered HTTP 401 (invalid_client)"
    text = " ".join(str(event) for event in ledger.events) + caplog.text
    assert wrong not in text
    assert CLIENT_SECRET not in text


def test_token_failures_have_their_own_metric_label() -> None:
    """An attempt that failed at the token endpoint is labelled auth_failed, whatever the words after."""
    assert failure_reason(None, "token endpoint: timeout after 5000 ms") is FailureReason.AUTH_FAILED
    assert failure_reason(None, "token endpoint answered HTTP 500") is FailureReason.AUTH_FAILED


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"access_token": "abc", "token_type": "Bearer", "expires_in": 120}', ("Bearer abc", 120.0)),
        (b'{"access_token": "abc", "expires_in": "60"}', ("Bearer abc", 60.0)),
        (b'{"access_token": "abc"}', ("Bearer abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": -5}', ("Bearer abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": true}', ("Bearer abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": 1e9}', ("Bearer abc", 86_400.0)),
        (b'{"access_token": "abc", "token_type": "mac"}', "not a bearer token"),
        (b'{"access_token": "a b"}', "without a usable access_token"),
        (b'{"access_token": ""}', "without a usable access_token"),
        (b'{"token": "abc"}', "without a usable access_token"),
        (b"[1]", "without a JSON object"),
        (b"not json", "without a JSON object"),
    ],
)
def test_token_answers(body: bytes, expected: tuple[str, float] | str) -> None:
    """A 2xx token answer: the bearer token and its lifetime (defaulted, capped), or why it is unusable."""
    got = _token_of(body)
    if isinstance(expected, str):
        assert isinstance(got, TokenFailure)
        assert expected in got.message
        assert not got.retryable
    else:
        assert got == expected


async def test_a_failed_early_refresh_keeps_the_current_token_until_it_expires(https_receiver: Any) -> None:
    """Inside the refresh margin a failing token endpoint is no outage: the still-valid token serves on."""
    clock = ShiftedClock()
    receiver = await _oauth_receiver(https_receiver, clock=clock, ttl_s=600)
    target = oauth_target(receiver)
    transport = create_transport(egress=LOOPBACK, ssl_context=ssl_context_for(str(receiver.ca_path)))
    tokens = TargetTokens(transport, clock=clock)
    try:
        first = await tokens.authorization(target)
        assert isinstance(first, str)
        clock.offset = 590  # refresh margin: a tenth of 600 s, at most 60 s
        receiver.fail_token_requests(503)
        assert await tokens.authorization(target) == first
        assert receiver.token_requests == 2
        clock.offset = 601  # expired: no token to fall back on
        failed = await tokens.authorization(target)
        assert isinstance(failed, TokenFailure)
        assert failed.retryable
        receiver.fail_token_requests(None)
        fresh = await tokens.authorization(target)
        assert isinstance(fresh, str)
        assert fresh != first
        tokens.rejected(target, first)  # an old token's 401 does not drop the new one
        assert await tokens.authorization(target) == fresh
        tokens.forget(target.name)
        assert await tokens.authorization(target) != fresh
        assert tokens.token_requests == receiver.token_requests == 5
        plain = IntegrationTarget(name="plain", endpoint="https://127.0.0.1:9/x")
        missing = await tokens.authorization(plain)
        assert isinstance(missing, TokenFailure)
        assert not missing.retryable
    finally:
        await transport.aclose()
