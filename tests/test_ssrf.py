"""The egress policy refuses private, loopback, link-local and metadata addresses in every disguise."""

from __future__ import annotations

import ipaddress
import re

import pytest

from cxone_eventbridge.exceptions import EgressDeniedError
from cxone_eventbridge.ssrf import EgressPolicy, canonical_host, destination_refusal, resolve_and_check

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


@pytest.mark.parametrize(
    "address",
    [
        "192.0.0.1",  # IETF protocol assignments, outside 3.11's ipaddress tables
        "192.0.0.192",  # Oracle Cloud metadata
        "168.63.129.16",  # Azure WireServer, a public-looking address
        "198.18.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "3fff::1",  # documentation (RFC 9637), unknown to 3.11's ipaddress
        "2001:db8::1",
        "5f00::1",
        "100::1",
        "64:ff9b:1::a",
        "4000::1",  # outside the global unicast range 2000::/3
        "::ffff:168.63.129.16",
    ],
)
def test_special_purpose_ranges_from_our_own_table(address: str) -> None:
    """IANA special-purpose ranges and cloud metadata addresses are refused whatever Python's tables say."""
    assert EgressPolicy().why_refused(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("example.com", "example.com"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("my_host.example.com", "my_host.example.com"),
        ("example.com.", "example.com."),
        ("93.184.216.34", "93.184.216.34"),
        ("2606:2800:220:1::1", "2606:2800:220:1::1"),
        ("\u4f8b\u3048.jp", "xn--r8jz45g.jp"),  # an internationalised name, written in its own script
        ("b\u00fccher.de", "xn--bcher-kva.de"),
    ],
)
def test_canonical_hosts_are_accepted(written: str, canonical: str) -> None:
    """Names, dotted-quad IPv4, IPv6 and genuine IDNA names have one canonical form."""
    assert canonical_host(written) == canonical


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "non-canonical spelling of '127.0.0.1'"),
        ("\u2460\u2461\u2466.0.0.1", "non-canonical spelling of '127.0.0.1'"),
        ("127\u30020\u30020\u30021", "non-canonical spelling of '127.0.0.1'"),
        ("\u217cocalhost", "non-canonical spelling of 'localhost'"),  # a Roman numeral fifty, not an 'l'
        ("\uff45xample.com", "non-canonical spelling of 'example.com'"),
        ("127.1", "read it as 127.0.0.1"),
        ("2130706433", "read it as 127.0.0.1"),
        ("0177.0.0.1", "read it as 127.0.0.1"),
        ("0x7f.0.0.1", "read it as 127.0.0.1"),
        ("127.0.0.1.", "not a canonical IPv4 address"),
        ("127.000.0.1", "not a canonical IPv4 address"),
        ("999.0.0.1", "not a canonical IPv4 address"),
        ("fe80::1%eth0", "zone ids"),
        ("a..b", "not a valid DNS name"),
        ("exa mple.com", "not a valid DNS name"),
        ("xn--.com", "not a valid DNS name"),
    ],
)
def test_non_canonical_hosts_are_refused(written: str, message: str) -> None:
    """Disguised IP literals and non-canonical spellings are refused with a reason naming the reading."""
    with pytest.raises(ValueError, match=re.escape(message)):
        canonical_host(written)


async def test_resolve_and_check_refuses_a_numeric_disguise_before_any_lookup() -> None:
    """``127.1`` never reaches a resolver (an older aiohttp connected to it as an address)."""
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"]

    with pytest.raises(EgressDeniedError, match="canonical IPv4"):
        await resolve_and_check("127.1", 443, EgressPolicy(), resolver)
    assert lookups == []


def test_destination_refusal_compares_the_connect_host_with_the_written_one() -> None:
    """The host the client would connect to must be the canonical host that was checked."""
    policy = EgressPolicy()
    assert destination_refusal("example.com", "example.com", policy) is None
    assert "not the endpoint's canonical host" in (destination_refusal("example.com", "evil.com", policy) or "")
    assert "loopback" in (destination_refusal("127.0.0.1", "127.0.0.1", policy) or "")
    assert destination_refusal("::ffff:93.184.216.34", "::ffff:5db8:d822", policy) is None
