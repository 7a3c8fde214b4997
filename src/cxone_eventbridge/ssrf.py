"""Egress policy: refuse to send requests to private, loopback, link-local or metadata addresses (SSRF).

Python's ``ip.is_global`` alone is not enough: an IPv4-mapped (``::ffff:127.0.0.1``), NAT64
(``64:ff9b::7f00:1``), 6to4 (``2002:7f00:1::``) or Teredo address embeds a private IPv4 address that the
network will reach. Every embedded IPv4 address is checked too. An allow-list admits chosen networks (the
local demo allows its own receiver on 127.0.0.0/8).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cxone_eventbridge.exceptions import EgressDeniedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
# Cloud metadata endpoints that are not already link-local or private.
_METADATA = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address in _NAT64 or address in _NAT64_LOCAL:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    # IPv4-compatible (deprecated ::a.b.c.d) still routes to the IPv4 address on some stacks.
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _why_blocked(address: IPAddress) -> str | None:
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which destination addresses requests may go to."""

    allow: tuple[IPNetwork, ...] = field(default_factory=tuple)
    allow_all: bool = False  # the sandbox's --allow-private-endpoints

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str], *, allow_all: bool = False) -> EgressPolicy:
        """Build a policy from CIDR strings; ValueError names the bad one."""
        networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not an IP network in CIDR form") from exc
        return cls(allow=tuple(networks), allow_all=allow_all)

    def _allowed(self, address: IPAddress) -> bool:
        return self.allow_all or any(address.version == net.version and address in net for net in self.allow)

    def why_refused(self, address: IPAddress) -> str | None:
        """Why the address is refused, or None when requests may go there."""
        if self._allowed(address):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            for inner in _embedded_ipv4(address):
                if not self._allowed(inner) and (reason := _why_blocked(inner)) is not None:
                    return f"{reason} embedded in {address}"
            if address in _NAT64:
                # A NAT64 gateway reaches exactly the embedded IPv4 address, which passed above.
                return None
        return _why_blocked(address)

    def check(self, address: IPAddress, *, host: str) -> None:
        """Raise EgressDeniedError when the address is refused."""
        reason = self.why_refused(address)
        if reason is not None:
            raise EgressDeniedError(f"destination {host} resolves to {address}, {reason}; refused (SSRF guard)")


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def resolve_and_check(
    host: str, port: int, policy: EgressPolicy, resolver: Resolver = system_resolver
) -> list[str]:
    """Resolve ``host`` and refuse it when any of its addresses is refused; returns the addresses."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        policy.check(literal, host=host)
        return [str(literal)]
    try:
        addresses = await resolver(host, port)
    except OSError as exc:
        raise EgressDeniedError(f"destination {host} does not resolve: {exc.strerror or exc}") from exc
    if not addresses:
        raise EgressDeniedError(f"destination {host} does not resolve")
    for text in addresses:
        policy.check(ipaddress.ip_address(text.split("%", 1)[0]), host=host)
    return list(addresses)
