"""The router's HTTP API on loopback: ingest to a real HTTPS receiver, auth, every bad input, status, dead letters."""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cxone_eventbridge.observe.audit import verify_audit_log
from cxone_eventbridge.observe.events import ObservedEvent

from .conftest import INGEST_KEY, StackFactory


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text parsed by prometheus_client's parser, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_one_event_is_accepted_after_commit_and_delivered(router_stack: StackFactory) -> None:
    """POST one object: 202 with its id, the receiver gets it, metrics, status and audit log record it."""
    stack = await router_stack()
    status, body, _ = await stack.call("POST", "/v1/events", json={"eventType": "call.answered", "callId": "c1"})
    assert status == 202
    assert body["accepted"] == 1
    (event_id,) = body["ids"]
    await stack.outcomes.wait(delivered=1)
    (record,) = stack.receiver.records()
    assert json.loads(record["body"])["callId"] == "c1"
    assert record["path"] == "/hooks/crm"

    status, text, headers = await stack.call("GET", "/metrics", key=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = metric_samples(text)
    assert samples["cxeb_deliveries_total", (("outcome", "delivered"), ("target", "crm"))] == 1
    assert samples["cxeb_events_accepted_total", (("priority", "5"),)] == 1
    assert samples["cxeb_queue_depth", (("state", "delivered"),)] == 1

    status, data, _ = await stack.call("GET", "/v1/status")
    assert status == 200
    (row,) = data["targets"]
    assert (row["target"], row["delivered"], row["failed"], row["circuit"]) == ("crm", 1, 0, "closed")
    assert row["p50Ms"] is not None
    assert data["queue"]["delivered"] == 1

    audit = stack.audit_records()
    assert [(a["target"], a["success"], a["event_id"]) for a in audit] == [("crm", True, event_id)]
    assert verify_audit_log(stack.audit_path).ok


async def test_arrays_ndjson_priority_and_own_ids_with_deduplication(router_stack: StackFactory) -> None:
    """An array and NDJSON are accepted whole; an event's own id is kept and a resent id is not delivered twice."""
    stack = await router_stack()
    status, body, _ = await stack.call("POST", "/v1/events?priority=0", json=[{"id": "evt-1"}, {"n": 2}])
    assert status == 202
    assert body["ids"][0] == "evt-1"
    ndjson = b'{"id": "evt-3"}\n\n{"id": "evt-4"}\n'
    status, body, _ = await stack.call(
        "POST", "/v1/events", data=ndjson, headers={"Content-Type": "application/x-ndjson"}
    )
    assert (status, body["ids"]) == (202, ["evt-3", "evt-4"])
    await stack.outcomes.wait(delivered=4)
    status, body, _ = await stack.call("POST", "/v1/events", json={"id": "evt-1"})
    assert (status, body["ids"]) == (202, ["evt-1"])
    status, data, _ = await stack.call("GET", "/v1/status")
    assert data["queue"]["delivered"] == 4
    assert len(stack.receiver.records()) == 4
    _, text, _ = await stack.call("GET", "/metrics", key=None)
    assert metric_samples(text)["cxeb_events_accepted_total", (("priority", "0"),)] == 2


async def test_the_ingest_key_is_required_on_v1_but_not_on_health_or_metrics(router_stack: StackFactory) -> None:
    """No or a wrong bearer key is 401 with a JSON body and WWW-Authenticate; /healthz, /readyz, /metrics are open."""
    stack = await router_stack()
    for key in (None, "wrong-key-wrong-key-wrong"):
        for method, path in (("POST", "/v1/events"), ("GET", "/v1/status"), ("GET", "/v1/dead-letters")):
            status, body, headers = await stack.call(method, path, key=key, json={"a": 1})
            assert status == 401, path
            assert body["error"] == "unauthorized"
            assert headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _, _ = await stack.call("GET", path, key=None)
        assert status == 200, path
    _, text, _ = await stack.call("GET", "/metrics", key=None)
    assert metric_samples(text)["cxeb_ingest_rejections_total", (("reason", "unauthorized"),)] == 6
    assert stack.receiver.request_count == 0


async def test_every_kind_of_bad_input_gets_its_status_and_a_json_body(router_stack: StackFactory) -> None:
    """400 malformed, 422 non-objects and bad ids, 413 big event or request, 400 bad priority, 404/405 JSON; still serving."""
    stack = await router_stack(config={"max_request_bytes": 300_000})
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("/v1/events", b'{"a": ', json_type, 400, "malformed_json"),
        ("/v1/events", b"", json_type, 400, "empty_body"),
        ("/v1/events", b'{"a":1}\n{oops\n', {"Content-Type": "application/x-ndjson"}, 400, "malformed_json"),
        ("/v1/events", b"[1, {}]", json_type, 422, "not_object"),
        ("/v1/events", b'"just a string"', json_type, 422, "not_object"),
        ("/v1/events", b'[{"id": 5}]', json_type, 422, "invalid_event"),
        ("/v1/events", json.dumps({"blob": "x" * 270_000}).encode(), json_type, 413, "event_too_large"),
        ("/v1/events", json.dumps([{"n": "y" * 1000}] * 400).encode(), json_type, 413, "request_too_large"),
        ("/v1/events?priority=12", b"{}", json_type, 400, "invalid_priority"),
    ]
    for path, data, headers, expected_status, code in cases:
        status, body, response_headers = await stack.call("POST", path, data=data, headers=headers)
        assert (status, body["error"]) == (expected_status, code), (path, data[:40])
        assert response_headers["Content-Type"].startswith("application/json")
        assert isinstance(body["message"], str)
    status, body, _ = await stack.call("POST", "/v1/events", data=b"[1, {}]", headers=json_type)
    assert body["errors"] == [{"field": "[0]", "message": "is a number, not a JSON object"}]
    status, body, _ = await stack.call("GET", "/v1/nothing-here")
    assert (status, body["error"]) == (404, "not_found")
    status, body, _ = await stack.call("GET", "/v1/events")
    assert (status, body["error"]) == (405, "method_not_allowed")
    status, body, _ = await stack.call("POST", "/v1/events", json={"still": "serving"})
    assert status == 202
    _, text, _ = await stack.call("GET", "/metrics", key=None)
    rejections = metric_samples(text)
    assert rejections["cxeb_ingest_rejections_total", (("reason", "malformed_json"),)] == 2
    assert rejections["cxeb_ingest_rejections_total", (("reason", "request_too_large"),)] == 1
    assert rejections["cxeb_ingest_rejections_total", (("reason", "invalid_event"),)] == 1
    await stack.outcomes.wait(delivered=1)
    assert stack.receiver.request_count == 1


async def test_a_full_queue_answers_503_and_accepts_nothing(router_stack: StackFactory) -> None:
    """When the queue's storage is full the request is refused whole with 503, Retry-After and a JSON body."""
    stack = await router_stack(max_queue_bytes=256 * 1024, start_router=False, targets=["crm"])
    await stack.router.queue.open()
    big = [{"pad": "z" * 2000, "n": n} for n in range(100)]
    statuses = []
    for _ in range(20):
        status, body, headers = await stack.call("POST", "/v1/events", json=big)
        statuses.append(status)
        if status == 503:
            assert body["error"] == "queue_full"
            assert headers["Retry-After"] == "5"
            break
    assert statuses[-1] == 503, statuses
    accepted = sum(100 for s in statuses if s == 202)
    stats = await stack.router.stats()
    assert stats.pending == accepted
    status, _, _ = await stack.call("GET", "/healthz", key=None)
    assert status == 200


async def test_readyz_needs_a_started_router(router_stack: StackFactory) -> None:
    """/readyz is 503 with reasons until the router runs with a routing table, then 200."""
    stack = await router_stack(start_router=False)
    status, body, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 503
    assert "the routing table is not loaded" in body["problems"]
    await stack.router.start()
    status, body, _ = await stack.call("GET", "/readyz", key=None)
    assert (status, body["status"]) == (200, "ready")


async def test_dead_letters_can_be_listed_replayed_and_purged(router_stack: StackFactory) -> None:
    """A 400 from the target dead-letters the delivery; the API lists, replays (delivered again) and purges it."""
    stack = await router_stack(receiver_status=400)
    await stack.call("POST", "/v1/events", json=[{"id": "a"}, {"id": "b"}])
    await stack.outcomes.wait(dead=2)
    status, body, _ = await stack.call("GET", "/v1/dead-letters?target=crm&limit=10")
    assert status == 200
    assert sorted(item["eventId"] for item in body["items"]) == ["a", "b"]
    assert {item["reason"] for item in body["items"]} == {"permanent"}
    assert {item["lastStatus"] for item in body["items"]} == {400}
    first = body["items"][0]["deliveryId"]
    status, body, _ = await stack.call("POST", "/v1/dead-letters/replay", json={"deliveryIds": [first]})
    assert (status, body) == (200, {"replayed": 1})
    await stack.outcomes.wait(dead=3)  # the receiver still answers 400
    status, body, _ = await stack.call("POST", "/v1/dead-letters/purge", json={"target": "crm"})
    assert (status, body) == (200, {"purged": 2})
    _, body, _ = await stack.call("GET", "/v1/dead-letters")
    assert body["items"] == []
    status, body, _ = await stack.call("GET", "/v1/dead-letters?limit=0")
    assert (status, body["error"]) == (400, "invalid_limit")
    status, body, _ = await stack.call("POST", "/v1/dead-letters/replay", json={"deliveryIds": "x"})
    assert (status, body["errors"][0]["field"]) == (422, "deliveryIds")
    audit = stack.audit_records()
    assert [a["success"] for a in audit] == [False, False, False]
    assert audit[-1]["metrics_snapshot"]["failure"] == 3


async def test_enable_names_a_target_or_answers_404(router_stack: StackFactory) -> None:
    """POST /v1/targets/{name}/enable is 200 for a known target and a JSON 404 for an unknown one."""
    stack = await router_stack()
    status, body, _ = await stack.call("POST", "/v1/targets/crm/enable")
    assert (status, body) == (200, {"target": "crm", "enabled": True})
    status, body, _ = await stack.call("POST", "/v1/targets/nope/enable")
    assert (status, body["error"]) == (404, "not_found")


async def test_a_failing_observer_never_fails_an_ingest_or_a_delivery(
    router_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer that raises is logged; the event is still accepted and delivered."""
    stack = await router_stack()

    def broken(_event: ObservedEvent) -> None:
        raise RuntimeError("observer bug")

    stack.bus.subscribe(broken)
    with caplog.at_level(logging.ERROR):
        status, _, _ = await stack.call("POST", "/v1/events", json={"a": 1})
        await stack.outcomes.wait(delivered=1)
    assert status == 202
    assert "observer" in caplog.text
    assert stack.receiver.request_count == 1


async def test_stop_refuses_new_work_and_keeps_what_was_accepted(router_stack: StackFactory) -> None:
    """After stop() the port is closed; everything accepted before is in the queue, delivered or pending."""
    stack = await router_stack(start_router=False)
    await stack.router.queue.open()
    status, body, _ = await stack.call("POST", "/v1/events", json=[{"n": n} for n in range(50)])
    assert (status, len(body["ids"])) == (202, 50)
    await stack.service.stop()
    with pytest.raises(OSError):
        await stack.call("POST", "/v1/events", json={"late": True})
    stats = await stack.router.stats()
    assert stats.pending + stats.delivered == 50


async def test_ingest_over_https_with_tls_cert_and_key(router_stack: StackFactory, receiver_certs_dir: Path) -> None:
    """With a server certificate the API is HTTPS only: a verifying client gets 202, plain HTTP gets nothing."""
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(receiver_certs_dir / "cert.pem", receiver_certs_dir / "key.pem")
    stack = await router_stack(config={"ssl_context": server_ssl})
    assert stack.url.startswith("https://127.0.0.1:")
    client_ssl = ssl.create_default_context(cafile=str(receiver_certs_dir / "ca.pem"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.url + "/v1/events",
            json={"secure": True},
            headers={"Authorization": f"Bearer {INGEST_KEY}"},
            ssl=client_ssl,
        ) as response,
    ):
        assert response.status == 202
    await stack.outcomes.wait(delivered=1)
    with pytest.raises(aiohttp.ClientError):
        await _plain_http(stack.url)


async def _plain_http(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url.replace("https://", "http://") + "/healthz") as r:
        await r.read()
