"""Ingest body parsing: objects, arrays and NDJSON accepted; each kind of bad input gets its status and names the item."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from cxone_eventbridge.exceptions import ConfigurationError, IngestError
from cxone_eventbridge.router.http_api import ServiceConfig, is_loopback_host, parse_priority
from cxone_eventbridge.wire import parse_events


def test_one_object_an_array_and_ndjson_are_all_accepted() -> None:
    """A single object, an array of objects and NDJSON (either content type) parse to the same list."""
    events = [{"eventType": "call.answered", "n": 1}, {"eventType": "call.ended", "n": 2}]
    assert parse_events(json.dumps(events[0]).encode()) == events[:1]
    assert parse_events(json.dumps(events).encode()) == events
    ndjson = ("\n".join(json.dumps(e) for e in events) + "\n\n").encode()
    assert parse_events(ndjson, content_type="application/x-ndjson") == events
    assert parse_events(ndjson, content_type="application/json") == events


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fields"),
    [
        (b"", "application/json", 400, "empty_body", []),
        (b"   \n", "application/json", 400, "empty_body", []),
        (b'{"a": ', "application/json", 400, "malformed_json", []),
        (b'{"a": NaN}', "application/json", 400, "malformed_json", []),
        (b'{"a": 1}\n{"b": \n{"c": 3}\nnope', "application/x-ndjson", 400, "malformed_json", ["line 2", "line 4"]),
        (b"42", "application/json", 422, "not_object", []),
        (b'"text"', "application/json", 422, "not_object", []),
        (b"[]", "application/json", 422, "not_object", []),
        (b'[{"a": 1}, 2, "x", null]', "application/json", 422, "not_object", ["[1]", "[2]", "[3]"]),
        (b'{"a": 1}\n[1]\n', "application/x-ndjson", 422, "not_object", ["line 2"]),
        (b'[{"id": 7}, {"id": ""}, {"id": "ok"}]', "application/json", 422, "invalid_event", ["[0].id", "[1].id"]),
    ],
)
def test_bad_bodies_get_their_status_code_and_name_every_bad_item(
    body: bytes, content_type: str, status: int, code: str, fields: list[str]
) -> None:
    """Malformed JSON is 400, non-objects and bad ids are 422, and every offending item is named."""
    with pytest.raises(IngestError) as caught:
        parse_events(body, content_type=content_type)
    error = caught.value
    assert (error.status, error.code) == (status, code)
    assert [field for field, _ in error.errors] == fields
    assert error.body()["error"] == code


def test_an_event_over_the_size_limit_is_413_naming_it() -> None:
    """An event larger than the per-event limit is refused with 413 and its index."""
    small, big = {"a": 1}, {"blob": "x" * 300_000}
    with pytest.raises(IngestError) as caught:
        parse_events(json.dumps([small, big]).encode())
    assert caught.value.status == 413
    assert caught.value.errors[0][0] == "[1]"
    assert "262144" in caught.value.errors[0][1]


def test_too_many_events_in_one_request_is_413() -> None:
    """A request over the configured event count is refused with 413."""
    with pytest.raises(IngestError) as caught:
        parse_events(json.dumps([{}] * 11).encode(), max_events=10)
    assert (caught.value.status, caught.value.code) == (413, "too_many_events")


@pytest.mark.parametrize(("value", "expected"), [(None, 5), ("0", 0), ("9", 9), ("3", 3)])
def test_priority_defaults_to_five_and_accepts_zero_to_nine(value: str | None, expected: int) -> None:
    """?priority is optional (5) and may be 0..9."""
    assert parse_priority(value) == expected


@pytest.mark.parametrize("value", ["10", "-1", "high", "1.5", ""])
def test_priority_out_of_range_is_400_naming_priority(value: str) -> None:
    """A priority that is not an integer 0..9 is 400 with the field priority."""
    with pytest.raises(IngestError) as caught:
        parse_priority(value)
    assert caught.value.status == 400
    assert caught.value.errors[0][0] == "priority"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("router.example.com", False),
    ],
)
def test_loopback_hosts_are_recognised(host: str, loopback: bool) -> None:
    """Only loopback addresses (and localhost) count as staying on this machine."""
    assert is_loopback_host(host) is loopback


def test_the_service_refuses_to_listen_beyond_loopback_without_a_key() -> None:
    """0.0.0.0 without an ingest key is a configuration error; with a key (>= 16 chars) it is allowed."""
    with pytest.raises(ConfigurationError, match="without an ingest key"):
        ServiceConfig(host="0.0.0.0").check()
    with pytest.raises(ConfigurationError, match="at least 16"):
        ServiceConfig(host="0.0.0.0", ingest_key=SecretStr("short")).check()
    ServiceConfig(host="0.0.0.0", ingest_key=SecretStr("k" * 32)).check()
    ServiceConfig(host="127.0.0.1").check()
