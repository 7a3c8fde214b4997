"""EventRouter end to end: ingest, durable queue, signed HTTPS delivery to a real loopback receiver."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from cxone_eventbridge.exceptions import InputError
from cxone_eventbridge.router.queue import delivery_id_for
from cxone_eventbridge.sandbox.certs import ensure_certificates

from .conftest import SECRET, RouterFactory, make_target

pytestmark = pytest.mark.e2e


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_ingested_event_is_delivered_signed_with_its_exact_body(
    https_receiver: Any, make_router: RouterFactory
) -> None:
    """The body is the event JSON as accepted, and the reference standardwebhooks package verifies it."""
    receiver = await https_receiver(secret=SECRET)
    router, ledger = await make_router([make_target("crm", receiver.url)], ca_path=receiver.ca_path)
    event = {"id": "evt-1", "eventType": "call.answered", "agent": {"name": "Zoë"}, "n": 1.5}
    assert await router.ingest([event], priority=1) == ["evt-1"]
    await ledger.wait_for(1)
    [record] = receiver.records()
    headers = lower(record["headers"])
    assert json.loads(record["body"]) == event
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer token-123"
    assert headers["webhook-id"] == delivery_id_for("evt-1", "crm")
    assert record["path"] == "/hooks/crm"
    assert record["signature_valid"] is True
    Webhook(SECRET).verify(record["body"].encode(), headers)  # raises if the signature is wrong


async def test_basic_and_api_key_authentication_headers(https_receiver: Any, make_router: RouterFactory) -> None:
    """Basic sends base64(user:password); api_key sends the value under its header name."""
    receiver = await https_receiver()
    targets = [
        make_target("basic", receiver.url, authentication={"type": "basic", "value": "user:pa:ss"}),
        make_target("key", receiver.url, authentication={"type": "api_key", "value": "k-1", "headerName": "X-Token"}),
    ]
    router, ledger = await make_router(targets, ca_path=receiver.ca_path)
    await router.ingest([{"eventType": "x"}])
    await ledger.wait_for(2)
    by_path = {r["path"]: lower(r["headers"]) for r in receiver.records()}
    assert by_path["/hooks/basic"]["authorization"] == "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert by_path["/hooks/key"]["x-token"] == "k-1"
    assert "authorization" not in by_path["/hooks/key"]


async def test_ingest_assigns_ids_and_dedups_on_given_ids(https_receiver: Any, make_router: RouterFactory) -> None:
    """Events without an id get one; the same id ingested twice is delivered once."""
    receiver = await https_receiver()
    router, ledger = await make_router([make_target("crm", receiver.url)], ca_path=receiver.ca_path)
    [assigned] = await router.ingest([{"eventType": "a"}])
    assert assigned.startswith("evt_")
    await router.ingest([{"id": "dup", "eventType": "b"}])
    await router.ingest([{"id": "dup", "eventType": "b"}])
    await ledger.wait_for(2)
    stats = await router.stats()
    assert stats.delivered == 2
    assert sorted(json.loads(r["body"]).get("id", "") for r in receiver.records()) == ["", "dup"]


async def test_ingest_rejects_invalid_events_naming_each_and_accepts_none(
    make_router: RouterFactory, tmp_path: Any
) -> None:
    """Non-objects, bad ids and oversized events are reported together; nothing is queued."""
    router, _ = await make_router([], ca_path=_dummy_ca(tmp_path))
    with pytest.raises(InputError) as caught:
        await router.ingest([{"ok": 1}, [1, 2], {"id": 7}, {"big": "x" * 300_000}])
    assert [e.field for e in caught.value.errors] == ["[1]", "[2].id", "[3]"]
    with pytest.raises(InputError) as bad_priority:
        await router.ingest([{"ok": 1}], priority=10)
    assert bad_priority.value.errors[0].field == "priority"
    assert (await router.stats()).pending == 0


def _dummy_ca(tmp_path: Any) -> Any:
    return ensure_certificates(tmp_path / "certs").ca
