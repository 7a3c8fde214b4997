"""Egress policy: refuse to send requests to private, loopback, link-local or metadata addresses (SSRF).

Two rules make the check hold for the address that is really connected to:

- **One canonical host.** HTTP stacks normalise a URL's host before they connect: yarl (aiohttp's URL
  type) maps ``127.0.0.1`` written in full-width digits and dots (U+FF11 U+FF12 U+FF17 U+FF0E ...), in
  circled digits (U+2460 ...) or with ideographic full stops (U+3002) to ``127.0.0.1`` through IDNA, and
  some stacks read ``127.1``, ``2130706433`` or ``0177.0.0.1`` as IPv4 addresses. :func:`canonical_host`
  accepts a host only in the one spelling every stack reads alike (a lower-case ASCII name, a dotted-quad
  IPv4 address, a bracketed IPv6 address, or a non-ASCII name that is exactly the IDNA form of itself)
  and refuses every other spelling, so the host that is checked is the host that is connected to.
  Endpoints are held to it at validation, in the router and in the sandbox's test call.
- **Our own deny table.** The refused ranges are written out here from IANA's special-purpose address
  registries (RFC 6890 and successors) and the cloud providers' metadata addresses, rather than taken
  from the running Python's ``ipaddress`` flags, which differ between versions (3.11 does not know
  ``3fff::/20``). An IPv4-mapped (``::ffff:127.0.0.1``), NAT64 (``64:ff9b::7f00:1``), 6to4
  (``2002:7f00:1::``), Teredo or IPv4-compatible address embeds an IPv4 address that the network will
  reach: every embedded IPv4 address is checked too.

An allow-list admits chosen networks (the local demo allows its own receiver on 127.0.0.0/8).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import idna

from cxone_eventbridge.exceptions import EgressDeniedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


# IANA IPv4 special-purpose registry entries that are not globally reachable, the multicast and future-use
# blocks, and metadata services that sit on otherwise public addresses. Checked in order: the first
# match gives the reason.
_IPV4_DENIED = _table(
    [
        ("168.63.129.16/32", "a cloud metadata address (Azure WireServer)"),
        ("100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)"),
        ("192.0.0.192/32", "a cloud metadata address (Oracle Cloud)"),
        ("0.0.0.0/8", "the unspecified / 'this network' range 0.0.0.0/8"),
        ("10.0.0.0/8", "a private address (10.0.0.0/8)"),
        ("100.64.0.0/10", "a shared carrier-grade NAT address (100.64.0.0/10)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
        ("172.16.0.0/12", "a private address (172.16.0.0/12)"),
        ("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
        ("192.0.2.0/24", "a documentation address (192.0.2.0/24)"),
        ("192.88.99.0/24", "a deprecated 6to4 relay address (192.88.99.0/24)"),
        ("192.168.0.0/16", "a private address (192.168.0.0/16)"),
        ("198.18.0.0/15", "a benchmarking address (198.18.0.0/15)"),
        ("198.51.100.0/24", "a documentation address (198.51.100.0/24)"),
        ("203.0.113.0/24", "a documentation address (203.0.113.0/24)"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address (240.0.0.0/4, broadcast included)"),
    ]
)
# The IPv6 counterpart. Global unicast is allocated from 2000::/3 only, so anything outside it is refused
# too (below), apart from NAT64 addresses, whose embedded IPv4 address decides.
_IPV6_DENIED = _table(
    [
        ("::1/128", "a loopback address"),
        ("::/128", "the unspecified address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address (64:ff9b:1::/48)"),
        ("100::/64", "a discard-only address (100::/64)"),
        ("2001::/23", "an IETF protocol assignment (2001::/23, Teredo included)"),
        ("2001:db8::/32", "a documentation address (2001:db8::/32)"),
        ("3fff::/20", "a documentation address (3fff::/20)"),
        ("5f00::/16", "a segment-routing (SRv6) address (5f00::/16)"),
        ("fc00::/7", "a unique-local (private) address (cloud metadata lives here)"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ]
)
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_MAPPED or address in _NAT64:
        embedded.append(low32)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    # IPv4-compatible (deprecated ::a.b.c.d) still routes to the IPv4 address on some stacks.
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:
        embedded.append(low32)
    return embedded


def _why_blocked(address: IPAddress) -> str | None:
    table = _IPV4_DENIED if isinstance(address, ipaddress.IPv4Address) else _IPV6_DENIED
    for network, reason in table:
        if address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _IPV6_GLOBAL_UNICAST:
        return "outside the IPv6 global unicast range 2000::/3"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which destination addresses requests may go to."""

    allow: tuple[IPNetwork, ...] = field(default_factory=tuple)  # --allow-private, the router's and the sandbox's

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> EgressPolicy:
        """Build a policy from CIDR strings; ValueError names the bad one."""
        networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not an IP network in CIDR form") from exc
        return cls(allow=tuple(networks))

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow)

    def why_refused(self, address: IPAddress) -> str | None:
        """Why the address is refused, or None when requests may go there."""
        if self._allowed(address):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            for inner in _embedded_ipv4(address):
                if not self._allowed(inner) and (reason := _why_blocked(inner)) is not None:
                    return f"{reason} embedded in {address}"
            if address in _NAT64 or address in _IPV4_MAPPED:
                # These reach exactly the embedded IPv4 address, which passed above.
                return None
        return _why_blocked(address)

    def check(self, address: IPAddress, *, host: str) -> None:
        """Raise EgressDeniedError when the address is refused."""
        reason = self.why_refused(address)
        if reason is not None:
            raise EgressDeniedError(f"destination {host} resolves to {address}, {reason}; refused (SSRF guard)")


# A label that some stack reads as a number: decimal, octal (leading 0) or hexadecimal (0x).
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_NAME_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_NAME_LENGTH = 253


def _legacy_ipv4(host: str) -> str | None:
    """What ``inet_aton`` reads ``host`` as (``127.1`` → ``127.0.0.1``), or None."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def canonical_host(host: str) -> str:
    """``host`` in the one spelling every HTTP stack reads alike; ValueError says why it is not one.

    ``host`` is a URL's host as written (``urlsplit(url).hostname``, brackets removed for IPv6). The
    result is lower-case ASCII: a dotted-quad IPv4 address, a compressed IPv6 address, or a DNS name
    (IDNA ``xn--`` labels for an internationalised one).
    """
    if not host:
        raise ValueError("has no host")
    if ":" in host:
        if "%" in host or not host.isascii():
            raise ValueError(f"host [{host}] is not a plain IPv6 address (zone ids and non-ASCII are refused)")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise ValueError(f"host [{host}] is not a valid IPv6 address") from exc
    if not host.isascii():
        try:
            encoded = idna.encode(host, uts46=True).decode("ascii")
            round_trip = idna.decode(encoded)
        except idna.IDNAError as exc:
            raise ValueError(f"host {host!r} is not a valid internationalised (IDNA) name: {exc}") from exc
        if round_trip != host.lower():
            # Full-width letters, circled digits, ideographic full stops: a disguise of an ASCII host.
            raise ValueError(f"host {host!r} is a non-canonical spelling of {encoded!r}; write it as {encoded!r}")
        host = encoded
    host = host.lower()
    bare = host.removesuffix(".")  # a fully qualified name may end in a dot
    labels = bare.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A top-level label is never numeric, so this is an IPv4 address; only a.b.c.d reads alike everywhere.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            read_as = _legacy_ipv4(bare)
            hint = f"; some clients read it as {read_as}" if read_as else ""
            raise ValueError(f"host {host!r} is not a canonical IPv4 address (write a.b.c.d){hint}") from None
    if len(bare) > _MAX_NAME_LENGTH or not all(_NAME_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"host {host!r} is not a valid DNS name (dot-separated labels of letters, digits, '-', '_')")
    return host


def checked_literal(host: str, policy: EgressPolicy) -> IPAddress | None:
    """The IP address ``host`` (a canonical host) denotes, after the policy check; None for a DNS name.

    Raises :class:`EgressDeniedError` when the address is refused.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    policy.check(address, host=host)
    return address


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)  # IPv6 compared as addresses, not text
    except ValueError:
        return a == b


def destination_refusal(written_host: str, connect_host: str, policy: EgressPolicy) -> str | None:
    """Why a request may not go to a URL, checked before any connection; None when it may (so far).

    ``written_host`` is the URL's host as written, ``connect_host`` the host the HTTP client will connect
    to after its own normalisation (yarl's ``raw_host``). They must agree on the canonical host, and an
    IP literal must pass the policy (a client sends it straight to a socket, without a resolver). A DNS
    name is checked again, address by address, when it is resolved.
    """
    try:
        canonical = canonical_host(written_host)
    except ValueError as exc:
        return f"destination {exc}; refused (SSRF guard)"
    if not _same_host(connect_host, canonical):
        return f"destination host {connect_host!r} is not the endpoint's canonical host {canonical!r}; refused"
    try:
        checked_literal(canonical, policy)
    except EgressDeniedError as exc:
        return str(exc)
    return None


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def resolve_and_check(
    host: str, port: int, policy: EgressPolicy, resolver: Resolver = system_resolver
) -> list[str]:
    """Resolve ``host`` and refuse it when any of its addresses is refused; returns the addresses.

    A host that is not in canonical form is refused before any lookup (see :func:`canonical_host`).
    """
    try:
        canonical = canonical_host(host.removeprefix("[").removesuffix("]"))
    except ValueError as exc:
        raise EgressDeniedError(f"destination {exc}; refused (SSRF guard)") from None
    literal = checked_literal(canonical, policy)
    if literal is not None:
        return [str(literal)]
    try:
        addresses = await resolver(canonical, port)
    except OSError as exc:
        raise EgressDeniedError(f"destination {canonical} does not resolve: {exc.strerror or exc}") from exc
    if not addresses:
        raise EgressDeniedError(f"destination {canonical} does not resolve")
    for text in addresses:
        policy.check(ipaddress.ip_address(text.split("%", 1)[0]), host=canonical)
    return list(addresses)
