"""POST /targets/{id}/test: a real signed synthetic event to the endpoint, SSRF-checked, with status changes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.sandbox.tester import client_ssl_context, send_test_event
from cxone_eventbridge.ssrf import EgressPolicy

TARGETS = "/api/v2/integrations/targets"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def local_api(make_api, receiver_certs_dir: Path):
    """An in-process sandbox that trusts the receiver's CA and may reach loopback endpoints."""
    return await make_api(allow_private=("127.0.0.0/8",), ca_bundle=receiver_certs_dir / "ca.pem")


async def _create_and_test(api, endpoint: str, **fields):
    created = await api.create(api.body(endpoint=endpoint, signingSecret=SECRET, **fields))
    assert created.status_code == 201, created.text
    target_id = created.json()["id"]
    headers = await api.headers()
    response = await api.http.post(f"{TARGETS}/{target_id}/test", headers=headers)
    target = (await api.http.get(f"{TARGETS}/{target_id}", headers=headers)).json()
    return response, target


async def test_passing_test_sends_a_signed_authenticated_event(local_api, https_receiver) -> None:
    """A 2xx endpoint gives 200 passed; it received the auth header, the test event and a valid signature."""
    # The sandbox's clock is fake; the receiver checks signatures against the same time.
    receiver = await https_receiver(secret=SECRET, clock=local_api.clock)
    response, target = await _create_and_test(local_api, f"{receiver.url}/hook?x=1")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["result"] == "passed"
    assert result["statusCode"] == 200
    assert result["latencyMs"] >= 0
    assert target["status"] == "active"
    (record,) = receiver.records()
    assert record["path"] == "/hook"
    assert record["headers"]["Authorization"] == "Bearer tok-123"
    event = json.loads(record["body"])
    assert event["eventType"] == "target.test"
    assert event["testId"] == result["testId"] == record["headers"]["webhook-id"]
    assert event["timestamp"].endswith("Z")
    assert record["signature_valid"] is True


async def test_signature_verifies_on_a_real_clock(make_api, receiver_certs_dir, https_receiver) -> None:
    """With the real clock the receiver's Standard Webhooks check passes."""
    api = await make_api(allow_private=("127.0.0.0/8",), ca_bundle=receiver_certs_dir / "ca.pem", clock=time.time)
    receiver = await https_receiver(secret=SECRET)
    response, _ = await _create_and_test(api, receiver.url)
    assert response.status_code == 200
    assert receiver.records()[0]["signature_valid"] is True


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"type": "basic", "value": "user:pass"}, "Authorization", "Basic dXNlcjpwYXNz"),
        ({"type": "api_key", "value": "k-1", "headerName": "X-Token"}, "X-Token", "k-1"),
    ],
)
async def test_auth_types_become_headers(local_api, https_receiver, auth, header, value) -> None:
    """Basic and api_key authentication arrive as the header the target names."""
    receiver = await https_receiver()
    response, _ = await _create_and_test(local_api, receiver.url, authentication=auth)
    assert response.status_code == 200
    assert receiver.records()[0]["headers"][header] == value


async def test_non_2xx_endpoint_gives_502_failed(local_api, https_receiver) -> None:
    """An endpoint answering 500 makes the test 502 with the status code, and the target failed."""
    receiver = await https_receiver(status=500)
    response, target = await _create_and_test(local_api, receiver.url)
    assert response.status_code == 502
    assert response.json()["result"] == "failed"
    assert response.json()["statusCode"] == 500
    assert target["status"] == "failed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_gives_502_without_status(local_api) -> None:
    """Nothing listening: 502 failed, statusCode null, an error saying it could not reach the endpoint."""
    response, target = await _create_and_test(local_api, f"https://127.0.0.1:{_closed_port()}/")
    assert response.status_code == 502
    assert response.json()["statusCode"] is None
    assert "could not reach" in response.json()["error"]
    assert target["status"] == "failed"


async def test_private_endpoints_are_refused_at_test_time(make_api, https_receiver) -> None:
    """Without allow_private a loopback endpoint is created fine but the test refuses to send."""
    api = await make_api()
    receiver = await https_receiver()
    response, target = await _create_and_test(api, receiver.url)
    assert response.status_code == 502
    assert "SSRF" in response.json()["error"]
    assert receiver.records() == []
    assert target["status"] == "failed"


async def test_allow_private_admits_only_its_ranges(make_api, https_receiver) -> None:
    """allow_private is a CIDR list: 10.0.0.0/8 admits no loopback receiver, 127.0.0.1/32 does."""
    receiver = await https_receiver()
    elsewhere = await make_api(allow_private=("10.0.0.0/8",), ca_bundle=receiver.ca_path)
    response, _ = await _create_and_test(elsewhere, receiver.url)
    assert response.status_code == 502
    assert "SSRF" in response.json()["error"]
    assert receiver.records() == []
    exact = await make_api(allow_private=("127.0.0.1/32",), ca_bundle=receiver.ca_path)
    response, _ = await _create_and_test(exact, receiver.url)
    assert response.status_code == 200
    assert len(receiver.records()) == 1


async def test_empty_json_body_is_fine(local_api, https_receiver) -> None:
    """The test route needs no body; an empty one with a JSON content type is accepted."""
    receiver = await https_receiver()
    target_id = (await local_api.create(local_api.body(endpoint=receiver.url))).json()["id"]
    headers = {**(await local_api.headers()), "Content-Type": "application/json"}
    response = await local_api.http.post(f"{TARGETS}/{target_id}/test", content=b"", headers=headers)
    assert response.status_code == 200


async def test_disabled_target_keeps_its_status(local_api, https_receiver) -> None:
    """Testing a disabled target reports the result but leaves it disabled."""
    receiver = await https_receiver()
    response, target = await _create_and_test(local_api, receiver.url, status="disabled")
    assert response.status_code == 200
    assert target["status"] == "disabled"


async def test_test_needs_its_scope(local_api) -> None:
    """A token without integration:target:test gets 403 naming it."""
    target_id = (await local_api.create(local_api.body())).json()["id"]
    headers = await local_api.headers(scope="integration:target:read integration:target:write")
    response = await local_api.http.post(f"{TARGETS}/{target_id}/test", headers=headers)
    assert response.status_code == 403
    assert "integration:target:test" in response.json()["message"]


async def test_timeout_gives_504(https_receiver, receiver_certs_dir) -> None:
    """An endpoint slower than timeoutMs gives 504 failed (timeout shortened below the API minimum)."""
    release = asyncio.Event()

    async def hold_until_released(seconds: float) -> None:
        await release.wait()  # slower than any timeout, however loaded the machine is

    receiver = await https_receiver(latency_ms=1, sleep=hold_until_released)
    target = IntegrationTarget(name="slow", endpoint=receiver.url, signing_secret=SECRET)
    fast = target.model_copy(update={"retry_policy": RetryPolicy.model_construct(max_retries=0, timeout_ms=100)})
    try:
        outcome = await send_test_event(
            fast,
            policy=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
            ssl_context=client_ssl_context(str(receiver_certs_dir / "ca.pem")),
        )
    finally:
        release.set()
    assert outcome.http_status == 504
    assert outcome.result.result == "failed"
    assert "100 ms" in (outcome.result.error or "")


async def test_unresolved_secret_reference_fails_without_sending(https_receiver, receiver_certs_dir) -> None:
    """A ${env:...} reference that reached the server is reported, not sent."""
    receiver = await https_receiver()
    target = IntegrationTarget(
        name="ref", endpoint=receiver.url, authentication={"type": "bearer", "value": "${env:TOKEN}"}
    )
    outcome = await send_test_event(
        target,
        policy=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=client_ssl_context(str(receiver_certs_dir / "ca.pem")),
    )
    assert outcome.http_status == 502
    assert "reference" in (outcome.result.error or "")
    assert receiver.records() == []


async def test_hostname_endpoint_is_pinned_to_the_checked_address(https_receiver, receiver_certs_dir) -> None:
    """The request goes to the address the SSRF check saw, with the URL's host for Host, SNI and certificate."""
    receiver = await https_receiver()
    seen: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["127.0.0.1"]

    target = IntegrationTarget(name="pinned", endpoint=f"https://localhost:{receiver.port}/p", signing_secret=SECRET)
    outcome = await send_test_event(
        target,
        policy=EgressPolicy.from_cidrs(["127.0.0.0/8"]),
        ssl_context=client_ssl_context(str(receiver_certs_dir / "ca.pem")),
        resolver=resolver,
    )
    assert outcome.http_status == 200, outcome.result.error
    assert seen == ["localhost"]
    assert receiver.records()[0]["headers"]["Host"] == f"localhost:{receiver.port}"


async def test_hostname_resolving_to_a_refused_address_is_not_contacted(https_receiver, receiver_certs_dir) -> None:
    """When the resolver answers a loopback address outside the allow-list, nothing is sent."""
    receiver = await https_receiver()

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    target = IntegrationTarget(name="rebind", endpoint=f"https://localhost:{receiver.port}/", signing_secret=SECRET)
    outcome = await send_test_event(
        target, policy=EgressPolicy(), ssl_context=client_ssl_context(None), resolver=resolver
    )
    assert outcome.http_status == 502
    assert "loopback" in (outcome.result.error or "")
    assert receiver.records() == []


async def test_the_test_event_goes_through_the_targets_input_transformer(local_api, https_receiver) -> None:
    """A target with an input transformer is stored with it and receives its transformed, signed test event."""
    receiver = await https_receiver(secret=SECRET, clock=local_api.clock)
    transformer = {"inputPathsMap": {"kind": "$.eventType"}, "inputTemplate": '"<kind> for <cxeb.target-name>"'}
    response, target = await _create_and_test(local_api, f"{receiver.url}/hook", inputTransformer=transformer)
    assert response.status_code == 200, response.text
    assert target["inputTransformer"] == transformer
    (record,) = receiver.records()
    assert record["body"] == f"target.test for {target['name']}"
    assert record["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert record["signature_valid"] is True


async def test_an_invalid_input_transformer_is_a_422_naming_the_field(local_api) -> None:
    """The sandbox refuses an invalid transformer at create time, with its wire field path."""
    transformer = {"inputPathsMap": {"a": "$.a"}, "inputTemplate": '{"x": <b>}'}
    created = await local_api.create(local_api.body(endpoint="https://example.com/h", inputTransformer=transformer))
    assert created.status_code == 422
    fields = {error["field"]: error["message"] for error in created.json()["errors"]}
    assert "is not a variable" in fields["inputTransformer.inputTemplate"]
