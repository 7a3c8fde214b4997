"""The egress policy refuses private, loopback, link-local and metadata addresses in every disguise."""

from __future__ import annotations

import ipaddress

import pytest

from cxone_eventbridge.exceptions import EgressDeniedError
from cxone_eventbridge.ssrf import EgressPolicy, resolve_and_check

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.100.100.200",
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "2002:a00:1::",
    "::127.0.0.1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_addresses(address: str) -> None:
    """Each private or disguised-private address is refused with a reason."""
    assert EgressPolicy().why_refused(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"])
def test_public_addresses_allowed(address: str) -> None:
    """Public addresses (and NAT64 forms of public ones) pass."""
    assert EgressPolicy().why_refused(ipaddress.ip_address(address)) is None


def test_allow_list_admits_its_networks_only() -> None:
    """An allow-list admits the loopback receiver but still refuses other private ranges."""
    policy = EgressPolicy.from_cidrs(["127.0.0.0/8"])
    assert policy.why_refused(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.why_refused(ipaddress.ip_address("10.0.0.1")) is not None


def test_bad_cidr_is_named() -> None:
    """A malformed allow-list entry is reported by value."""
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        EgressPolicy.from_cidrs(["10.0.0.0/33"])


async def test_resolve_and_check_refuses_when_any_address_is_private() -> None:
    """A name resolving to one public and one private address is refused (DNS rebinding style)."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(EgressDeniedError, match="private"):
        await resolve_and_check("evil.example", 443, EgressPolicy(), resolver)


async def test_resolve_and_check_literal_and_unresolvable() -> None:
    """Literal IPs are checked without DNS; a name that does not resolve is refused."""
    assert await resolve_and_check("127.0.0.1", 443, EgressPolicy.from_cidrs(["127.0.0.0/8"])) == ["127.0.0.1"]

    async def failing(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(EgressDeniedError, match="does not resolve"):
        await resolve_and_check("nowhere.invalid", 443, EgressPolicy(), failing)
