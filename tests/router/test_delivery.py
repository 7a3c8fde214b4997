"""Delivery outcomes against real loopback servers: statuses, redirects, 410, SSRF, TLS, circuit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cxone_eventbridge import signing
from cxone_eventbridge.models import InputTransformer, TargetStatus
from cxone_eventbridge.observe.events import CircuitStateChanged, DeliveryAttempted, TargetChanged
from cxone_eventbridge.router.circuit import CircuitPolicy
from cxone_eventbridge.router.delivery import RequestTemplate, build_request
from cxone_eventbridge.router.queue import Delivery
from cxone_eventbridge.ssrf import EgressPolicy

from ..clocks import ManualClock
from ..waiting import until
from .conftest import SECRET, RouterFactory, fast_options, make_target
from .test_event_router import _dummy_ca

pytestmark = pytest.mark.e2e


def attempts(ledger: Any) -> list[DeliveryAttempted]:
    return [e for e in ledger.events if isinstance(e, DeliveryAttempted)]


def test_webhook_id_is_constant_and_signature_changes_per_attempt() -> None:
    """The id is the delivery's; timestamp and signature are computed for each attempt."""
    target = make_target("crm", "https://example.com")
    delivery = Delivery("1", "token", "msg_abc", "e1", "crm", 5, b'{"a":1}', 0, 0.0, 30.0)
    first = build_request(target, delivery, timestamp=1_700_000_000)
    second = build_request(target, delivery, timestamp=1_700_000_060)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_abc"
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.body == b'{"a":1}'
    assert "token-123" not in repr(target)


def test_a_reused_template_signs_every_attempt_like_the_reference_signer() -> None:
    """The per-target keyed HMAC is copied per attempt, so no attempt's signature depends on an earlier one."""
    template = RequestTemplate(make_target("crm", "https://example.com"))
    for delivery_id, timestamp, body in [("msg_a", 1, b"{}"), ("msg_b", 2, b'{"a":1}'), ("msg_a", 1, b"{}")]:
        headers = template.headers(delivery_id, timestamp, body)
        assert headers["webhook-signature"] == signing.sign(SECRET, delivery_id, timestamp, body)
        assert (headers["webhook-id"], headers["webhook-timestamp"]) == (delivery_id, str(timestamp))
        assert headers["Authorization"] == "Bearer token-123"
    assert "token-123" not in repr(template)


async def test_permanent_4xx_is_dead_lettered_after_one_attempt(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """A 400 is not retried: one attempt, dead letter with reason permanent and the status."""
    receiver = await https_receiver(status=400)
    router, ledger = await make_router([make_target("crm", receiver.url)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    [letter] = await router.dead_letters()
    assert (letter.reason, letter.last_status, letter.attempts) == ("permanent", 400, 1)
    assert receiver.request_count == 1


async def test_redirects_are_not_followed(https_receiver: Any, make_router: RouterFactory) -> None:
    """A 307 is a permanent failure; the Location is never requested."""
    receiver = await https_receiver(status=307)
    router, ledger = await make_router([make_target("crm", receiver.url)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    assert [a.status_code for a in attempts(ledger)] == [307]
    assert receiver.request_count == 1


async def test_410_dead_letters_and_disables_the_target_until_enabled(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """Gone: the delivery is dead-lettered, the target disabled (remembered), later events wait."""
    receiver = await https_receiver(status=410)
    canary = await https_receiver()  # a target still enabled: its delivery shows the dispatcher leased past crm's
    targets = [make_target("crm", receiver.url), make_target("canary", canary.url)]
    router, ledger = await make_router(targets, ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(2)
    assert [d.reason for d in ledger.dead.values()] == ["gone"]
    assert router.disabled_targets() == ["crm"]
    assert any(isinstance(e, TargetChanged) and e.action == "disabled" for e in ledger.events)
    await router.ingest([{"id": "e2"}])
    await ledger.wait_until(lambda: ("e2", "canary") in ledger.delivered)  # leased after e2 was queued for crm too
    assert receiver.request_count == 1
    assert (await router.stats()).pending == 1
    assert await router.queue.disabled_targets() == {"crm": "gone"}
    assert await router.enable_target("crm") is True
    assert await router.enable_target("nope") is False
    await ledger.wait_for(4)
    assert receiver.request_count == 2


async def test_control_plane_disabled_status_holds_deliveries(https_receiver: Any, make_router: RouterFactory) -> None:
    """A target whose status is disabled gets its events queued, not sent."""
    receiver = await https_receiver()
    canary = await https_receiver()  # an enabled target: its delivery shows the dispatcher leased past crm's
    target = make_target("crm", receiver.url, status=TargetStatus.DISABLED)
    router, ledger = await make_router([target, make_target("canary", canary.url)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_until(lambda: ("e1", "canary") in ledger.delivered)
    assert receiver.request_count == 0
    assert (await router.stats()).pending == 1


async def test_retry_after_and_exhaustion(https_receiver: Any, make_router: RouterFactory) -> None:
    """429 is retried (Retry-After honoured within the bound) until maxRetries, then dead-lettered."""
    receiver = await https_receiver(status=429, retry_after=0)
    router, ledger = await make_router([make_target("crm", receiver.url, max_retries=2)], ca_path=receiver.ca_path)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    [letter] = await router.dead_letters()
    assert (letter.reason, letter.last_status, letter.attempts) == ("retries_exhausted", 429, 3)
    assert receiver.request_count == 3


async def test_loopback_refused_without_allow_list(https_receiver: Any, make_router: RouterFactory) -> None:
    """The SSRF guard refuses 127.0.0.1 unless allowed; nothing is sent and the reason is recorded."""
    receiver = await https_receiver()
    router, ledger = await make_router(
        [make_target("crm", receiver.url)], ca_path=receiver.ca_path, egress=EgressPolicy()
    )
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    [letter] = await router.dead_letters()
    assert letter.reason == "egress_denied"
    assert "loopback" in (letter.last_error or "")
    assert receiver.request_count == 0


async def test_hostname_resolution_is_checked_and_pinned(https_receiver: Any, make_router: RouterFactory) -> None:
    """A name that resolves to a refused address is refused at connect time, whatever DNS says later."""
    receiver = await https_receiver()
    lookups: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["10.0.0.7"]  # a private address the policy does not admit

    url = receiver.url.replace("127.0.0.1", "hooks.example.test")
    router, ledger = await make_router([make_target("crm", url)], ca_path=receiver.ca_path, resolver=rebinding_resolver)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    [letter] = await router.dead_letters()
    assert letter.reason == "egress_denied"
    assert "private" in (letter.last_error or "")
    assert lookups == ["hooks.example.test"]


async def test_dns_failure_is_retried_not_refused(make_router: RouterFactory, tmp_path: Any) -> None:
    """A name that does not resolve is a transient error (retried), not an SSRF refusal."""

    async def failing_resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    router, ledger = await make_router(
        [make_target("crm", "https://nowhere.test", max_retries=1)],
        ca_path=_dummy_ca(tmp_path),
        resolver=failing_resolver,
    )
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    [letter] = await router.dead_letters()
    assert letter.reason == "retries_exhausted"
    assert [a.outcome for a in attempts(ledger)] == ["error", "error"]


async def test_untrusted_certificate_is_a_retryable_tls_error(
    https_receiver: Any, make_router: RouterFactory, tmp_path: Any
) -> None:
    """Without the receiver's CA the TLS handshake fails; that is retried and recorded as a TLS error."""
    receiver = await https_receiver()
    other_ca = _dummy_ca(tmp_path)  # a different CA than the receiver's
    router, ledger = await make_router([make_target("crm", receiver.url, max_retries=1)], ca_path=other_ca)
    await router.ingest([{"id": "e1"}])
    await ledger.wait_for(1)
    assert all(a.outcome == "error" and (a.error or "").startswith("tls") for a in attempts(ledger))
    assert receiver.request_count == 0


def circuit_change(ledger: Any, state: str) -> CircuitStateChanged | None:
    """The first CircuitStateChanged to ``state`` the ledger saw, if any."""
    return next((e for e in ledger.events if isinstance(e, CircuitStateChanged) and e.state == state), None)


async def test_circuit_opens_and_waiting_spends_no_retries(https_receiver: Any, make_router: RouterFactory) -> None:
    """With the circuit open, pending deliveries are not attempted; the probe after open_s is a real one.

    The router runs on a clock the test moves: while it stands still the circuit stays open, and a canary
    target's delivery shows the dispatcher was working all the while without sending to the open one.
    """
    receiver = await https_receiver(status=503)
    healthy = await https_receiver()
    clock = ManualClock()
    options = fast_options(circuit=CircuitPolicy(failure_threshold=2, open_s=0.2), per_target_in_flight=1)
    targets = [
        make_target("crm", receiver.url, max_retries=10, event_pattern={"kind": ["call"]}),
        make_target("canary", healthy.url, event_pattern={"kind": ["canary"]}),
    ]
    router, ledger = await make_router(targets, ca_path=receiver.ca_path, options=options, clock=clock)
    await router.ingest([{"id": f"e{i}", "kind": "call"} for i in range(5)])
    await ledger.wait_until(lambda: circuit_change(ledger, "open") is not None)
    sent_when_opened = receiver.request_count
    await router.ingest([{"id": "canary", "kind": "canary"}])
    await ledger.wait_for(1)
    assert receiver.request_count == sent_when_opened  # the dispatcher delivered, the open circuit held
    clock.advance(0.2)
    await ledger.wait_until(lambda: circuit_change(ledger, "half_open") is not None)
    opened, half_open = circuit_change(ledger, "open"), circuit_change(ledger, "half_open")
    assert opened is not None
    assert half_open is not None
    assert half_open.at - opened.at >= 0.2
    await ledger.wait_until(lambda: receiver.request_count > sent_when_opened)
    assert receiver.request_count == sent_when_opened + 1  # exactly one probe
    letters = await router.dead_letters()
    assert letters == []
    stats = await router.stats()
    assert stats.pending + stats.leased == 5


async def test_a_hostname_is_resolved_once_for_many_deliveries(https_receiver: Any, make_router: RouterFactory) -> None:
    """Connections are kept alive and checked resolutions cached: 60 deliveries cost one DNS lookup, not 60."""
    receiver = await https_receiver()
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = receiver.url.replace("127.0.0.1", "localhost")
    options = fast_options(per_target_in_flight=4, max_in_flight=4)
    router, ledger = await make_router(
        [make_target("crm", url)], ca_path=receiver.ca_path, resolver=resolver, options=options
    )
    for start in range(0, 60, 10):  # in waves, so connections are reused rather than opened at once
        await router.ingest([{"id": f"e{i}"} for i in range(start, start + 10)])
        await ledger.wait_for(start + 10)
    assert len(ledger.delivered) == 60
    assert lookups == ["localhost"]


async def test_leased_ahead_deliveries_are_released_unspent_when_the_circuit_opens(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """Deliveries leased ahead of free slots go back to the queue, attempts unspent, when the target's circuit opens."""
    receiver = await https_receiver(status=503)
    options = fast_options(
        circuit=CircuitPolicy(failure_threshold=1, open_s=60), per_target_in_flight=1, max_in_flight=1, prefetch=8
    )
    router, ledger = await make_router(
        [make_target("crm", receiver.url, max_retries=10)], ca_path=receiver.ca_path, options=options
    )
    await router.ingest([{"id": f"e{i}"} for i in range(6)])
    await ledger.wait_until(
        lambda: any(isinstance(e, CircuitStateChanged) and e.state == "open" for e in ledger.events)
    )

    async def released() -> bool:  # releases publish no event: read the queue's figures until they show it
        return (await router.stats()).leased == 0

    await until(released)
    stats = await router.stats()
    assert (stats.pending, stats.leased) == (6, 0)
    assert receiver.request_count == 1  # only the attempt that opened the circuit
    assert len(attempts(ledger)) == 1


async def test_transformed_bodies_are_delivered_signed_with_their_content_type(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """inputTransformer, inputPath and input change the body; Content-Type follows; the signature verifies."""
    receiver = await https_receiver(secret=SECRET)
    targets = [
        make_target(
            "text",
            receiver.url,
            input_transformer=InputTransformer(
                input_paths_map={"agent": "$.agent.name", "wait": "$.metrics.wait"},
                input_template='"<agent> waited <wait> s on <aws.events.rule-name>"',
            ),
        ),
        make_target(
            "json",
            receiver.url,
            input_transformer=InputTransformer(
                input_paths_map={"agent": "$.agent.name", "gone": "$.nothing"},
                input_template='{"who": <agent>, "missing": <gone>, "id": <cxeb.event-id>}',
            ),
        ),
        make_target("part", receiver.url, input_path="$.metrics"),
        make_target("fixed", receiver.url, input='{"ping": true}'),
        make_target("plain", receiver.url),
    ]
    router, ledger = await make_router(targets, ca_path=receiver.ca_path)
    event = {"id": "e1", "agent": {"name": 'Ana "A"'}, "metrics": {"wait": 42}}
    await router.ingest([event])
    await ledger.wait_for(5)
    by_path = {record["path"]: record for record in receiver.records()}
    assert all(record["signature_valid"] for record in by_path.values())
    text = by_path["/hooks/text"]
    assert text["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert text["body"] == 'Ana "A" waited 42 s on text'
    shaped = by_path["/hooks/json"]
    assert shaped["headers"]["Content-Type"] == "application/json"
    assert json.loads(shaped["body"]) == {"who": 'Ana "A"', "missing": None, "id": "e1"}
    assert json.loads(by_path["/hooks/part"]["body"]) == {"wait": 42}
    assert by_path["/hooks/fixed"]["body"] == '{"ping": true}'
    assert json.loads(by_path["/hooks/plain"]["body"]) == event


def test_build_request_signs_the_transformed_bytes() -> None:
    """The signature covers the bytes sent: the transformed body, not the event."""
    target = make_target("crm", "https://example.com", input_path="$.a")
    delivery = Delivery("1", "token", "msg_abc", "e1", "crm", 5, b'{"a":{"b":1}}', 0, 0.0, 30.0)
    request = build_request(target, delivery, timestamp=1_700_000_000)
    assert request.body == b'{"b":1}'
    assert request.headers["webhook-signature"] == signing.sign(SECRET, "msg_abc", 1_700_000_000, b'{"b":1}')
    assert request.headers["Content-Type"] == "application/json"
