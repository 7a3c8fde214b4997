"""Failure reasons: a closed label vocabulary, by table and from the delivery client's real failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from cxone_eventbridge.models import IntegrationTarget, RetryPolicy
from cxone_eventbridge.observe.metrics import ATTEMPT_OUTCOMES
from cxone_eventbridge.observe.reasons import FailureReason, dead_letter_reason, failure_reason
from cxone_eventbridge.router.delivery import (
    AttemptOutcome,
    DeliveryClient,
    create_transport,
    ssl_context_for,
)
from cxone_eventbridge.router.queue import DeadLetterReason, Delivery
from cxone_eventbridge.ssrf import EgressPolicy

LOOPBACK = EgressPolicy.from_cidrs(["127.0.0.0/8"])


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (503, None, "status_5xx"),
        (500, "ignored when there is a status", "status_5xx"),
        (429, None, "status_429"),
        (408, None, "status_408"),
        (410, None, "status_410"),
        (404, None, "status_4xx"),
        (307, None, "status_3xx"),
        (101, None, "status_other"),
        (None, "timeout after 1000 ms", "timeout"),
        (None, "tls error connecting to example.com:443: certificate verify failed", "tls"),
        (None, "connection error connecting to 127.0.0.1:9: Connection refused", "connect"),
        (None, "connection error: the server closed the connection (ServerDisconnectedError)", "connect"),
        (None, "connection error connecting to nowhere.invalid:443: Name or service not known", "dns"),
        (None, "destination 10.0.0.1 is a private address; refused (SSRF guard)", "egress_denied"),
        (None, "connection error connecting to tls-timeout.dns.example:443: Connection refused", "connect"),
        (None, "connection error with timeout.tls.example:443: connection closed before message completed", "connect"),
        (None, "connection error: [Errno -2] Name or service not known", "dns"),
        (None, "connection error: destination tls.example does not resolve: unknown", "dns"),
        (None, "RuntimeError: boom", "other"),
        (None, None, "other"),
    ],
)
def test_failure_reason_maps_statuses_and_errors_onto_the_closed_set(
    status: int | None, error: str | None, expected: str
) -> None:
    """Statuses by class, errors by their kind; a host name in the text never decides the label."""
    assert failure_reason(status, error) == expected


@pytest.mark.parametrize(
    ("reason", "status", "error", "expected"),
    [
        ("expired", 503, None, "expired"),
        ("gone", 410, None, "status_410"),
        ("egress_denied", None, "refused (SSRF guard)", "egress_denied"),
        ("permanent", 400, None, "status_4xx"),
        ("retries_exhausted", 503, None, "status_5xx"),
        ("retries_exhausted", None, "timeout after 5000 ms", "timeout"),
        ("retries_exhausted", None, None, "other"),
    ],
)
def test_dead_letter_reason_names_what_made_the_last_attempt_fail(
    reason: str, status: int | None, error: str | None, expected: str
) -> None:
    """A dead letter's label is its final cause: expiry, refusal, or the last attempt's failure."""
    assert dead_letter_reason(reason, status, error) == expected


def test_every_queue_dead_letter_reason_and_attempt_outcome_is_known() -> None:
    """The metrics' fixed label sets cover every value the router can produce."""
    assert set(ATTEMPT_OUTCOMES) == {outcome.value for outcome in AttemptOutcome}
    for reason in DeadLetterReason:
        assert dead_letter_reason(reason.value, 500, None) in set(FailureReason)


def _target(url: str, *, timeout_ms: int = 5000) -> IntegrationTarget:
    return IntegrationTarget(
        name="crm",
        endpoint=f"{url}/hooks/crm",
        signing_secret=SecretStr("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        retry_policy=RetryPolicy(max_retries=1, timeout_ms=timeout_ms),
    )


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never answers (the attempt times out)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _no_such_host(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def _attempt_reason(target: IntegrationTarget, *, ca: Any = None, resolver: Any = None) -> tuple[str, str]:
    kwargs: dict[str, Any] = {"egress": LOOPBACK, "ssl_context": ca}
    if resolver is not None:
        kwargs["resolver"] = resolver
    transport = create_transport(**kwargs)
    try:
        client = DeliveryClient(transport)
        delivery = Delivery("1", "token", "msg_1", "e1", "crm", 5, b"{}", 0, 0.0, 30.0)
        result = await client.send(target, delivery)
    finally:
        await transport.aclose()
    return result.outcome.value, failure_reason(result.status, result.error).value


@pytest.mark.e2e
async def test_real_transport_failures_get_their_reason(https_receiver: Any, silent_server: int) -> None:
    """Timeout, refused connection, untrusted certificate, unresolvable host and 5xx/429, as the client sees them."""
    unavailable = await https_receiver(status=503)
    busy = await https_receiver(status=429)
    trusted = ssl_context_for(str(unavailable.ca_path))
    assert await _attempt_reason(_target(unavailable.url), ca=trusted) == ("retry", "status_5xx")
    assert await _attempt_reason(_target(busy.url), ca=trusted) == ("retry", "status_429")
    silent = _target(f"https://127.0.0.1:{silent_server}", timeout_ms=1000)
    assert await _attempt_reason(silent, ca=trusted) == ("error", "timeout")
    refused = _target(f"https://127.0.0.1:{_closed_port()}")
    assert await _attempt_reason(refused, ca=trusted) == ("error", "connect")
    assert await _attempt_reason(_target(unavailable.url), ca=ssl_context_for(None)) == ("error", "tls")
    nowhere = _target("https://nowhere.invalid")
    assert await _attempt_reason(nowhere, ca=trusted, resolver=_no_such_host) == ("error", "dns")
