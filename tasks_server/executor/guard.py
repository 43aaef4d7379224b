"""The destination guard of SPEC §10.2: which addresses an attempt may connect to.

A small pure policy. ``CurlTransport`` asks it about every address libcurl is about to
connect to (target, redirect hops, proxy: ``OPENSOCKETFUNCTION``), and registration asks it
about URL hosts that are IP literals. Checking the connect address rather than the name is
what makes DNS answers, ``resolve``, rebinding and odd literal forms irrelevant.

Ranges are CIDRs or the words ``loopback``, ``private`` (RFC 1918, RFC 4193, CGNAT) and
``link-local`` (where cloud metadata services live); ``none`` is the empty list, so a deny
list can be switched off although an empty setting means "the default". IPv4-mapped IPv6
(``::ffff:127.0.0.1``) is judged as the IPv4 address it reaches.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DestinationGuard", "Network", "host_address", "parse_ranges"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_WORDS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
    "none": (),
}


def parse_ranges(value: str) -> tuple[Network, ...]:
    """A comma list of CIDRs and words; raises ``ValueError`` naming the bad item."""
    networks: list[Network] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item.lower() in _WORDS:
            networks += [ipaddress.ip_network(cidr) for cidr in _WORDS[item.lower()]]
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            words = ", ".join(_WORDS)
            raise ValueError(f"{item!r} is neither a CIDR nor one of {words}") from None
    return tuple(networks)


def _normalise(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)
def _parsed(ip: str) -> Address:
    """Parsing costs more than the check, and a burst connects to the same few addresses."""
    return _normalise(ipaddress.ip_address(ip))


def host_address(host: str) -> Address | None:
    """The address a URL host names when it is an IP literal, in any form libcurl accepts
    (``[::1]``, ``127.1``, ``2130706433``, ``0x7f000001``); None for a host name."""
    host = host.strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    try:  # inet_aton takes every IPv4 spelling libcurl does, and no host name
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class DestinationGuard:
    """``deny`` ranges are refused; with ``allow`` given, everything outside it is too."""

    deny: Sequence[Network] = ()
    allow: Sequence[Network] | None = None

    @classmethod
    def parse(cls, deny: str, allow: str | None) -> DestinationGuard:
        return cls(parse_ranges(deny), parse_ranges(allow) if allow else None)

    def refusal(self, ip: str | Address) -> str | None:
        """Why connecting to ``ip`` is refused, or None when it is allowed."""
        address = _parsed(ip) if isinstance(ip, str) else _normalise(ip)
        if any(address in network for network in self.deny):
            return f"destination {address} refused by DESTINATION_DENY"
        if self.allow is not None and not any(address in network for network in self.allow):
            return f"destination {address} refused by DESTINATION_ALLOW"
        return None
