"""The router's HTTP API under hostile input: bad JSON is 400, a connection cap, idle, header and body timeouts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cxone_eventbridge.models import EventFilter
from cxone_eventbridge.router.connection_cap import REFUSAL
from cxone_eventbridge.router.http_api import ServiceConfig

from ..waiting import HANG_GUARD_S, until
from .conftest import INGEST_KEY, Stack, StackFactory, target_for


async def raw_request(stack: Stack, request: bytes) -> bytes:
    """Send bytes as they are on a new connection and read the answer until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.service.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(HANG_GUARD_S):
            return await reader.read()
    finally:
        writer.close()


def post(body: bytes, *, authorization: bytes = b"Bearer " + INGEST_KEY.encode()) -> bytes:
    """A raw HTTP/1.1 POST /v1/events closing the connection after the answer."""
    return (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Authorization: " + authorization + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 1e999}',
        b'{"s": "\\ud800"}',
        b'[{"a": 1}, {"\\udfff": 2}]',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}",
    ],
)
async def test_json_that_cannot_be_carried_on_is_400_over_http(router_stack: StackFactory, body: bytes) -> None:
    """Overflowing numbers, lone surrogates and nesting past 64 levels get 400 malformed_json, never 500."""
    stack = await router_stack()
    status, data, _ = await stack.call("POST", "/v1/events", data=body, headers={"Content-Type": "application/json"})
    assert (status, data["error"]) == (400, "malformed_json")


async def test_a_non_utf8_authorization_header_is_401_not_500(router_stack: StackFactory) -> None:
    """Header bytes that are not UTF-8 are compared as bytes and refused like any other wrong key."""
    stack = await router_stack()
    answer = await raw_request(stack, post(b'{"a": 1}', authorization=b"Bearer \xff\xfe\x80key"))
    assert answer.startswith(b"HTTP/1.1 401 ")
    answer = await raw_request(stack, post(b'{"a": 1}'))
    assert answer.startswith(b"HTTP/1.1 202 ")


async def test_connections_beyond_the_cap_get_503_and_the_cap_is_logged_once(
    router_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With two idle connections open and a cap of 2, new ones get 503 and close; one warning, then one 'again'."""
    stack = await router_stack(config={"max_connections": 2})
    caplog.set_level(logging.INFO, logger="cxone_eventbridge.router.connection_cap")
    idle = [await asyncio.open_connection("127.0.0.1", stack.service.port) for _ in range(2)]
    for reader, writer in idle:  # one answered request each: both are counted, and now idle (keep-alive)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b'{"status": "ok"}')
    assert stack.service.connections.open == 2
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert await raw_request(stack, health) == REFUSAL
    assert await raw_request(stack, health) == REFUSAL
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "connection cap reached" in warnings[0].getMessage()

    _, writer = idle.pop()
    writer.close()
    await until(lambda: stack.service.connections.open == 1)  # the server's count announces nothing
    assert (await raw_request(stack, health)).startswith(b"HTTP/1.1 200 ")
    assert any("accepting connections again: 2 refused" in r.getMessage() for r in caplog.records)
    assert stack.service.connections.refused_total == 2
    for _, writer in idle:
        writer.close()


async def test_a_connection_that_never_completes_its_headers_is_closed(router_stack: StackFactory) -> None:
    """A client sending half a request line and stalling is disconnected after the idle/header timeout."""
    stack = await router_stack(config={"idle_timeout_s": 0.2})
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.service.port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    async with asyncio.timeout(HANG_GUARD_S):  # the server closes it; before the fix this hung for an hour
        assert await reader.read() == b""
    writer.close()
    assert stack.service.connections.open == 0


async def test_a_body_that_never_arrives_whole_is_408(router_stack: StackFactory) -> None:
    """Headers promising 1,000 bytes followed by 10 and silence get 408 request_timeout, and the event is not accepted."""
    stack = await router_stack(config={"body_timeout_s": 0.2})
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.service.port)
    writer.write(post(b"x" * 1_000)[:-990])
    await writer.drain()
    async with asyncio.timeout(HANG_GUARD_S):
        answer = await reader.readuntil(b"request_timeout")  # the server then lingers to drain the rest
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_an_ipv6_host_in_brackets_is_accepted_and_binds(router_stack: StackFactory) -> None:
    """--host "[::1]" (the URL form) passes the loopback check and binds ::1; the URL shows it bracketed."""
    config = ServiceConfig(host="[::1]", port=0)
    assert config.host == "::1"
    config.check()
    stack = await router_stack(config={"host": "[::1]"})
    assert stack.url.startswith("http://[::1]:")
    status, data, _ = await stack.call("GET", "/healthz", key=None)
    assert (status, data) == (200, {"status": "ok"})


async def test_an_event_too_costly_to_match_is_422_naming_it_and_the_rest_still_flow(
    router_stack: StackFactory,
) -> None:
    """Against 100 regex targets, a 2,000-element array is refused with 422 naming [1]; nothing of the request is kept."""
    stack = await router_stack()
    for n in range(100):
        filters = [EventFilter(field="tags", operator="regex", value=f"^zz{n}[a-z]+x$")]
        stack.router.upsert_target(target_for(f"scan{n}", stack.receiver.url, event_filters=filters))
    hostile = {"tags": [f"value-{n:06d}" for n in range(2_000)]}
    status, data, _ = await stack.call("POST", "/v1/events", json=[{"a": 1}, hostile])
    assert (status, data["error"]) == (422, "invalid_event")
    ((field, message),) = [(e["field"], e["message"]) for e in data["errors"]]
    assert field == "[1]"
    assert "units of work" in message
    status, data, _ = await stack.call("POST", "/v1/events", json={"tags": ["zz7abcx"]})
    assert (status, data["accepted"]) == (202, 1)
    status, data, _ = await stack.call("POST", "/v1/match", json=hostile)  # the dry run is bounded alike
    assert (status, data["error"]) == (422, "invalid_event")
    assert "units of work" in data["message"]


async def test_readyz_and_metrics_say_when_the_audit_log_cannot_be_written(
    router_stack: StackFactory, tmp_path: Path
) -> None:
    """With the audit log on a full device, a delivery's line is lost: /readyz is 503 naming it, metrics count it."""
    full = tmp_path / "full-audit.log"
    full.symlink_to("/dev/full")
    stack = await router_stack(audit_path=full)
    status, data, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 200
    status, _, _ = await stack.call("POST", "/v1/events", json={"eventType": "x"})
    assert status == 202
    await stack.outcomes.wait(delivered=1)
    stack.audit.flush()
    status, data, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 503
    assert data["problems"] == ["the audit log cannot be written (No space left on device): 1 record(s) lost so far"]
    _, text, _ = await stack.call("GET", "/metrics", key=None)
    assert "cxeb_audit_write_failures_total 1.0" in text
    assert "cxeb_audit_records_lost_total 1.0" in text
    assert "cxeb_audit_writing 0.0" in text


async def test_readyz_says_not_ready_while_the_queue_storage_is_full(router_stack: StackFactory) -> None:
    """Once a put finds the queue's storage full (a 256 KiB cap stands for the disk), /readyz is 503 saying so."""
    stack = await router_stack(max_queue_bytes=256 * 1024)
    status, _, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 200
    big = [{"pad": "z" * 2000, "n": n} for n in range(100)]
    for _ in range(20):
        status, _, _ = await stack.call("POST", "/v1/events", json=big)
        if status == 503:
            break
    assert status == 503
    status, data, _ = await stack.call("GET", "/readyz", key=None)
    assert status == 503
    assert "the queue's storage is full: events cannot be accepted until space is freed" in data["problems"]
