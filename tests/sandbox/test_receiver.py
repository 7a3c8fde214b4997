"""The HTTPS receiver: TLS with its own CA, one flushed JSON line per request, signature verdicts, faults."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from cxone_eventbridge import signing
from cxone_eventbridge.sandbox.receiver import ReceiverConfig, start_receiver

SECRET = signing.generate_signing_secret()


def _client(ca_path: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_path)), timeout=5)


def _signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    headers = signing.signature_headers(secret, "msg_1", timestamp or int(time.time()), body)
    return {**headers, "Content-Type": "application/json"}


async def test_records_each_post_as_a_json_line_before_answering(https_receiver) -> None:
    """The record holds time, path without query, verbatim headers, raw body and a null verdict without a secret."""
    receiver = await https_receiver()
    async with _client(receiver.ca_path) as client:
        response = await client.post(f"{receiver.url}/hooks/a?token=x", content=b'{"n": 1}', headers={"X-Custom": "v"})
    assert response.status_code == 200
    (record,) = receiver.records()  # readable right away: flushed before the answer
    assert record["path"] == "/hooks/a"
    assert record["body"] == '{"n": 1}'
    assert record["headers"]["X-Custom"] == "v"
    assert record["signature_valid"] is None
    assert record["time"].endswith("+00:00")
    assert receiver.request_count == 1


async def test_valid_signature_is_recorded_as_valid(https_receiver) -> None:
    """With a secret, a correctly signed request is recorded with signature_valid true."""
    receiver = await https_receiver(secret=SECRET)
    body = b'{"eventType": "x"}'
    async with _client(receiver.ca_path) as client:
        response = await client.post(receiver.url, content=body, headers=_signed(body))
    assert response.status_code == 200
    assert receiver.records()[0]["signature_valid"] is True


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(_signed(b"{}", secret=signing.generate_signing_secret()), id="wrong-secret"),
        pytest.param(_signed(b"{}", timestamp=int(time.time()) - 3600), id="stale-timestamp"),
        pytest.param({"Content-Type": "application/json"}, id="unsigned"),
    ],
)
async def test_invalid_signature_is_recorded_but_still_answered_200(https_receiver, headers) -> None:
    """By default the receiver answers 200 whatever the verdict, and records signature_valid false."""
    receiver = await https_receiver(secret=SECRET)
    async with _client(receiver.ca_path) as client:
        response = await client.post(receiver.url, content=b"{}", headers=headers)
    assert response.status_code == 200
    assert receiver.records()[0]["signature_valid"] is False


async def test_reject_invalid_signatures_answers_401(https_receiver) -> None:
    """With reject_invalid_signatures a bad signature gets 401 while a good one gets 200."""
    receiver = await https_receiver(secret=SECRET, reject_invalid_signatures=True)
    async with _client(receiver.ca_path) as client:
        bad = await client.post(
            receiver.url, content=b"{}", headers=_signed(b"{}", secret=signing.generate_signing_secret())
        )
        good = await client.post(receiver.url, content=b"{}", headers=_signed(b"{}"))
    assert (bad.status_code, good.status_code) == (401, 200)


async def test_fixed_status_carries_retry_after(https_receiver) -> None:
    """--status and --retry-after: every POST gets that status with the Retry-After header."""
    receiver = await https_receiver(status=429, retry_after=7)
    async with _client(receiver.ca_path) as client:
        response = await client.post(receiver.url, content=b"{}")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert len(receiver.records()) == 1


async def test_fail_rate_answers_a_fraction_with_503(https_receiver) -> None:
    """--fail-rate 0.5 with a seed answers some requests 503 and the others 200."""
    receiver = await https_receiver(fail_rate=0.5, seed=1)
    async with _client(receiver.ca_path) as client:
        statuses = [(await client.post(receiver.url, content=b"{}")).status_code for _ in range(40)]
    assert set(statuses) == {200, 503}
    assert 8 <= statuses.count(503) <= 32


async def test_fail_rate_one_always_fails(https_receiver) -> None:
    """--fail-rate 1 answers every POST with 503."""
    receiver = await https_receiver(fail_rate=1.0)
    async with _client(receiver.ca_path) as client:
        statuses = {(await client.post(receiver.url, content=b"{}")).status_code for _ in range(5)}
    assert statuses == {503}


async def test_latency_delays_the_answer(https_receiver) -> None:
    """--latency-ms holds each answer back: the answer waits for the receiver's (injected) sleep to end."""
    held, release = asyncio.Event(), asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        held.set()
        await release.wait()

    receiver = await https_receiver(latency_ms=120, sleep=sleep)
    async with _client(receiver.ca_path) as client:
        answer = asyncio.create_task(client.post(receiver.url, content=b"{}"))
        await held.wait()  # the request reached the receiver and is being held
        assert waits == [0.12]
        assert not answer.done()
        release.set()
        assert (await answer).status_code == 200


async def test_health_check_is_not_recorded(https_receiver) -> None:
    """GET answers 200 for readiness checks and leaves the record empty; other methods get 405."""
    receiver = await https_receiver()
    async with _client(receiver.ca_path) as client:
        assert (await client.get(receiver.url)).status_code == 200
        assert (await client.put(receiver.url, content=b"{}")).status_code == 405
    assert receiver.records() == []


async def test_clients_not_trusting_the_ca_are_refused(https_receiver) -> None:
    """The certificate is not publicly trusted: a default client fails verification."""
    receiver = await https_receiver()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(receiver.url, content=b"{}")


async def test_localhost_name_is_covered_by_the_certificate(https_receiver) -> None:
    """Reaching the receiver as https://localhost verifies against the CA too."""
    receiver = await https_receiver()
    async with _client(receiver.ca_path) as client:
        response = await client.post(f"https://localhost:{receiver.port}/x", content=b"{}")
    assert response.status_code == 200


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
async def test_serves_on_ipv6_loopback(https_receiver) -> None:
    """Listening on ::1 gives a bracketed URL that verifies against the certificate."""
    receiver = await https_receiver(host="::1")
    assert receiver.url.startswith("https://[::1]:")
    async with _client(receiver.ca_path) as client:
        assert (await client.post(receiver.url, content=b"{}")).status_code == 200


async def test_without_record_file_it_still_counts(tmp_path: Path) -> None:
    """With no record file the receiver answers and counts, and records() says why it cannot help."""
    receiver = await start_receiver(ReceiverConfig(certs_dir=tmp_path, port=0))
    try:
        assert (tmp_path / "ca.pem").exists()
        async with _client(receiver.ca_path) as client:
            await client.post(receiver.url, content=b"{}")
        assert receiver.request_count == 1
        with pytest.raises(RuntimeError, match="record file"):
            receiver.records()
    finally:
        await receiver.stop()


async def test_record_file_is_appended_across_restarts(tmp_path: Path) -> None:
    """A second receiver on the same record file appends rather than truncating."""
    record = tmp_path / "rec.jsonl"
    for _ in range(2):
        receiver = await start_receiver(ReceiverConfig(certs_dir=tmp_path, port=0, record_path=record))
        async with _client(receiver.ca_path) as client:
            await client.post(receiver.url, content=b"{}")
        await receiver.stop()
    assert [json.loads(line)["body"] for line in record.read_text().splitlines()] == ["{}", "{}"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"status": 42}, "status"),
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"retry_after": -2}, "retry_after"),
        ({"secret": "not-a-secret"}, "secret"),
        ({"port": 70000}, "port"),
    ],
)
def test_invalid_options_name_the_field(tmp_path: Path, options, field) -> None:
    """Bad receiver options raise ValueError naming the option, never echoing a secret."""
    with pytest.raises(ValueError, match=f"^{field}") as info:
        ReceiverConfig(certs_dir=tmp_path, **options)
    assert "not-a-secret" not in str(info.value)
