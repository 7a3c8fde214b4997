"""Ingest body parsing: objects, arrays and NDJSON accepted; each kind of bad input gets its status and names the item."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Generator
from typing import Any

import pytest
from pydantic import SecretStr

from cxone_eventbridge.exceptions import ConfigurationError, IngestError
from cxone_eventbridge.router.http_api import ServiceConfig, is_loopback_host
from cxone_eventbridge.router.http_routes.ingest import parse_priority
from cxone_eventbridge.router.ingest_body import parse_events, parse_events_stepwise


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


# -- issue 12: limits apply while parsing, memory stays bounded, bad JSON is 400 ----------------------------


def _objects(count: int) -> list[bytes]:
    return [b'{"n":%d}' % n for n in range(count)]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_the_event_count_is_refused_while_parsing_before_the_rest_is_read(content_type: str) -> None:
    """One event over the limit is 413 at once: garbage after it is never read (it would be a 400 otherwise)."""
    if content_type == "application/json":
        body = b"[" + b",".join(_objects(11)) + b", this is not JSON"
    else:
        body = b"\n".join([*_objects(11), b"this is not JSON"])
    with pytest.raises(IngestError) as caught:
        parse_events(body, content_type=content_type, max_events=10)
    assert (caught.value.status, caught.value.code) == (413, "too_many_events")


def _peak_mib_while_parsing(body: bytes, **options: object) -> tuple[float, IngestError | None]:
    tracemalloc.start()
    try:
        parse_events(body, **options)  # type: ignore[arg-type]
    except IngestError as exc:
        error: IngestError | None = exc
    else:
        error = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak / 2**20, error


SIXTEEN_MIB = 16 * 2**20


def test_a_16_mib_array_of_numbers_is_refused_in_bounded_memory() -> None:
    """A 16 MiB array of 8 million numbers is 413 after 10,001 items; peak memory stays near the text's (was 1.2 GB)."""
    body = b"[" + b"0," * (SIXTEEN_MIB // 2 - 1) + b"0]"
    peak, error = _peak_mib_while_parsing(body)
    assert error is not None
    assert (error.status, error.code) == (413, "too_many_events")
    assert peak < 40  # the decoded text (16 MiB) plus 10,000 items


def test_one_huge_item_is_refused_unread_in_bounded_memory() -> None:
    """An item whose JSON text runs past 4x the event limit is 413 without being parsed whole."""
    body = b'[{"blob": [' + b"{}," * (SIXTEEN_MIB // 3) + b"{}]}]"
    peak, error = _peak_mib_while_parsing(body)
    assert error is not None
    assert (error.status, error.code) == (413, "event_too_large")
    assert error.errors[0][0] == "[0]"
    assert peak < 120  # the text (16 MiB) plus one 1 MiB slice parsed (was several GB for the whole)


def test_an_ndjson_line_past_the_item_limit_is_413_naming_it_without_parsing() -> None:
    """A 2 MiB line is refused by its length alone; the other lines are still checked and counted."""
    body = b'{"a": 1}\n{"blob": "' + b"x" * (2 * 2**20) + b'"}\n{"b": 2}\n'
    with pytest.raises(IngestError) as caught:
        parse_events(body, content_type="application/x-ndjson")
    assert (caught.value.status, caught.value.code) == (413, "event_too_large")
    assert [field for field, _ in caught.value.errors] == ["line 2"]


def drain(steps: Generator[None, None, list[dict[str, Any]]]) -> tuple[int, list[dict[str, Any]]]:
    """Run a stepwise parse to its end: how many times it yielded, and what it returned."""
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return yields, done.value
        yields += 1


def test_parsing_steps_yield_so_a_caller_can_interleave_other_work() -> None:
    """parse_events_stepwise yields about every step of text, and returns what parse_events returns."""
    events = [{"n": n, "pad": "x" * 200} for n in range(5_000)]
    for body, content_type in [
        (json.dumps(events).encode(), "application/json"),
        ("\n".join(json.dumps(e) for e in events).encode(), "application/x-ndjson"),
    ]:
        yields, parsed = drain(parse_events_stepwise(body, content_type=content_type, step_chars=64 * 1024))
        assert parsed == events
        assert yields >= len(body) // (64 * 1024) - 1


DEEP = 100_000


@pytest.mark.parametrize(
    ("body", "content_type", "fields"),
    [
        (b'{"n": 1e999}', "application/json", []),
        (b'[{"a": 1}, {"n": -1e400}]', "application/json", []),
        (b'{"a": 1}\n{"n": 1e999}\n', "application/x-ndjson", ["line 2"]),
        (b'{"s": "\\ud800"}', "application/json", ["[0]"]),
        (b'[{"a": 1}, {"\\udfff": 1}]', "application/json", ["[1]"]),
        (b'{"a": 1}\n{"s": "x\\ud83d"}\n', "application/x-ndjson", ["line 2"]),
        (b'{"s": "\xed\xa0\x80"}', "application/json", []),
        (b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}", "application/json", []),
        (b'[{"a": ' + b"[" * 65 + b"]" * 65 + b"}]", "application/json", ["[0]"]),
        (b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}\n", "application/x-ndjson", ["line 1"]),
        (b'{"a": ' + b'{"b": ' * 70 + b"1" + b"}" * 70 + b"}\n", "application/x-ndjson", ["line 1"]),
    ],
)
def test_json_that_cannot_be_carried_on_is_400_never_a_crash(body: bytes, content_type: str, fields: list[str]) -> None:
    """Overflowing numbers, lone surrogates (escaped or encoded) and nesting past 64 levels are 400 malformed_json."""
    with pytest.raises(IngestError) as caught:
        parse_events(body, content_type=content_type)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")
    assert [field for field, _ in caught.value.errors] == fields


def test_nesting_up_to_the_limit_and_paired_surrogates_are_accepted() -> None:
    """64 levels of nesting and an escaped surrogate pair (an emoji) are fine."""
    deep = b'{"a": ' + b"[" * 63 + b"]" * 63 + b', "e": "\\ud83d\\ude00"}'
    (event,) = parse_events(deep)
    assert event["e"] == "\U0001f600"
