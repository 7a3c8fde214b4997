"""No spelling of a private address reaches a socket: not at validation, not in the router, not in the test call.

The hosts are generated (hypothesis): IPv4 addresses in refused ranges written with decimal, octal, hex
and shortened numbers, Unicode digits (full-width, circled, mathematical, Arabic-Indic) and dots
(ideographic, full-width, half-width), a trailing dot, and IPv6 embeddings (mapped, NAT64, 6to4,
IPv4-compatible, expanded, upper case). Whether a socket was opened is observed with Python's audit hook
on ``socket.connect``, on a plain asyncio loop, so no layer of ours is trusted to report it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from cxone_eventbridge.models import IntegrationTarget, TargetAuthentication
from cxone_eventbridge.router.delivery import AttemptOutcome, DeliveryClient, create_transport
from cxone_eventbridge.router.queue import Delivery
from cxone_eventbridge.sandbox.tester import client_ssl_context, send_test_event
from cxone_eventbridge.ssrf import EgressPolicy

_connects: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside ``socket_connects()``


@contextmanager
def socket_connects() -> Iterator[list[Any]]:
    """Every address passed to ``socket.connect`` in this process while the block runs."""
    global _connects  # noqa: PLW0603  the audit hook is process-wide by nature
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


REFUSED_V4 = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "168.63.129.16",
    "192.0.0.192",
]
DIGITS = {
    "fullwidth": [chr(0xFF10 + d) for d in range(10)],
    "mathematical": [chr(0x1D7CE + d) for d in range(10)],
    "circled": [chr(0x24EA), *(chr(0x2460 + d) for d in range(9))],
    "arabic-indic": [chr(0x0660 + d) for d in range(10)],
}
DOTS = [".", "\u3002", "\uff0e", "\uff61"]


def _number(value: int, base: str) -> str:
    return {"dec": str(value), "oct": f"0{value:o}", "hex": f"0x{value:x}", "pad": f"{value:03d}"}[base]


@st.composite
def ipv4_spellings(draw: st.DrawFn) -> str:
    address = ipaddress.IPv4Address(draw(st.sampled_from(REFUSED_V4)))
    a, b, c, d = address.packed
    parts = draw(st.sampled_from([4, 3, 2, 1]))
    values = {4: [a, b, c, d], 3: [a, b, (c << 8) | d], 2: [a, (b << 16) | (c << 8) | d], 1: [int(address)]}[parts]
    bases = draw(st.lists(st.sampled_from(["dec", "dec", "oct", "hex", "pad"]), min_size=parts, max_size=parts))
    text = ".".join(_number(v, base) for v, base in zip(values, bases, strict=True))
    if draw(st.booleans()):
        text += "."
    family = draw(st.sampled_from([None, *DIGITS]))
    chars = []
    for ch in text:
        if ch.isdigit() and family is not None and draw(st.booleans()):
            chars.append(DIGITS[family][int(ch)])
        elif ch == "." and draw(st.booleans()):
            chars.append(draw(st.sampled_from(DOTS)))
        elif ch in "xabcdef" and draw(st.booleans()):
            chars.append(chr(ord(ch) - ord("a") + 0xFF41))  # full-width Latin letter
        else:
            chars.append(ch)
    return "".join(chars)


@st.composite
def ipv6_spellings(draw: st.DrawFn) -> str:
    v4 = ipaddress.IPv4Address(draw(st.sampled_from(REFUSED_V4)))
    high, low = int(v4) >> 16, int(v4) & 0xFFFF
    form = draw(
        st.sampled_from(
            [
                f"::ffff:{v4}",
                f"::ffff:{high:x}:{low:x}",
                f"64:ff9b::{high:x}:{low:x}",
                f"64:ff9b::{v4}",
                f"2002:{high:x}:{low:x}::1",
                f"::{v4}",
                f"0:0:0:0:0:ffff:{high:04x}:{low:04x}",
                "::1",
                "0:0:0:0:0:0:0:1",
                "fe80::1",
                "fd00:ec2::254",
                "fc00::1",
                "::",
            ]
        )
    )
    return f"[{form.upper() if draw(st.booleans()) else form}]"


HOSTS = st.one_of(ipv4_spellings(), ipv6_spellings())


def _target(endpoint: str) -> IntegrationTarget:
    valid = IntegrationTarget(
        name="victim",
        endpoint="https://hooks.example.com/x",
        authentication=TargetAuthentication(type="bearer", value=SecretStr("token-123")),
        signing_secret=SecretStr("whsec_" + "A" * 32),
    )
    return valid.model_copy(update={"endpoint": endpoint})  # no validation: the runtime checks stand alone


async def _private_answer(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]  # were any name to reach a resolver, it would be pointed at loopback


async def _router_attempt(target: IntegrationTarget) -> AttemptOutcome:
    transport = create_transport(egress=EgressPolicy(), resolver=_private_answer)
    try:
        client = DeliveryClient(transport)
        delivery = Delivery("1", "token", "msg_1", "e1", target.name, 5, b"{}", 0, 0.0, 30.0)
        outcome = (await client.send(target, delivery)).outcome
    finally:
        await transport.aclose()
    # The router's HTTP client (pyreqwest) opens its sockets in Rust, out of the audit hook's sight; it can
    # open none without a client object, and the transport builds one only for a destination it admitted.
    assert transport.clients_built == 0
    return outcome


async def _test_call(target: IntegrationTarget) -> int:
    outcome = await send_test_event(
        target, policy=EgressPolicy(), ssl_context=client_ssl_context(None), resolver=_private_answer
    )
    return outcome.http_status


async def _both(target: IntegrationTarget) -> tuple[AttemptOutcome, int]:
    return await _router_attempt(target), await _test_call(target)


def _run(coroutine: Any) -> Any:
    # A plain asyncio selector loop: its sockets connect through socket.connect, which the audit hook sees.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coroutine)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=HOSTS, port=st.sampled_from(["", ":443", ":8443"]))
def test_no_spelling_of_a_private_address_reaches_a_socket(host: str, port: str) -> None:
    """Validation refuses every non-canonical spelling; router and test call refuse them all, unconnected."""
    endpoint = f"https://{host}{port}/hook"
    bare = host.strip("[]")
    if bare.isascii() and (":" in bare or bare in REFUSED_V4):
        IntegrationTarget(name="victim", endpoint=endpoint)  # canonical: the policy refuses it at run time
    else:
        with pytest.raises(ValidationError, match="endpoint"):
            IntegrationTarget(name="victim", endpoint=endpoint)
    target = _target(endpoint)
    with socket_connects() as connects:
        outcome, status = _run(_both(target))
    assert outcome is AttemptOutcome.REFUSED
    assert status == 502
    assert connects == []


@pytest.mark.e2e
async def test_full_width_loopback_endpoint_gets_nothing(https_receiver: Any, tmp_path: Any) -> None:
    """The attack that was found: a bearer token sent to 127.0.0.1 written in full-width digits and dots."""
    receiver = await https_receiver()
    port = receiver.url.rsplit(":", 1)[1]
    disguised = "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11"
    target = _target(f"https://{disguised}:{port}/hook")
    transport = create_transport(egress=EgressPolicy(), ssl_context=client_ssl_context(str(receiver.ca_path)))
    try:
        client = DeliveryClient(transport)
        result = await client.send(target, Delivery("1", "token", "msg_1", "e1", "victim", 5, b"{}", 0, 0.0, 30.0))
    finally:
        await transport.aclose()
    assert result.outcome is AttemptOutcome.REFUSED
    assert "non-canonical spelling of '127.0.0.1'" in (result.error or "")
    assert receiver.request_count == 0
    with pytest.raises(ValidationError, match="endpoint"):
        IntegrationTarget(name="victim", endpoint=f"https://{disguised}:{port}/hook")


def test_sockets_are_seen_by_the_audit_hook() -> None:
    """The observation itself works: a real connection attempt to a closed loopback port is recorded."""

    async def connect() -> None:
        try:
            async with aiohttp.ClientSession() as session, session.get("http://127.0.0.1:9/") as _:
                pass
        except aiohttp.ClientError:
            pass

    with socket_connects() as connects:
        _run(connect())
    assert ("127.0.0.1", 9) in connects
