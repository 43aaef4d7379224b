"""The destination guard of SPEC §10.2: which addresses an attempt may connect to.

A small pure policy. ``CurlTransport`` asks it about every address libcurl is about to
connect to (target, redirect hops, proxy: ``OPENSOCKETFUNCTION``), and registration asks it
about URL hosts that are IP literals. Checking the connect address rather than the name is
what makes DNS answers, ``resolve``, rebinding and odd literal forms irrelevant.

Ranges are CIDRs or the words ``loopback`` (with the unspecified addresses ``0.0.0.0/8`` and
``::``, which reach this host too), ``private`` (RFC 1918, RFC 4193, CGNAT), ``link-local``
(169.254/16, where most cloud metadata services live) and ``metadata`` (the well-known metadata
and platform services outside it); ``none`` is the empty list, so a deny list can be switched
off although an empty setting means "the default".

An IPv6 address can carry an IPv4 address inside it: IPv4-mapped (``::ffff:127.0.0.1``, which
the kernel connects as IPv4), IPv4-compatible (``::127.0.0.1``), NAT64 (``64:ff9b::/96`` and
the local-use ``64:ff9b:1::/48``), 6to4 (``2002::/16``) and Teredo (``2001::/32``). A deny
list refuses such an address when it refuses the IPv4 address inside, so no spelling of a
refused IPv4 address gets through; an IPv4-mapped address is judged (and named) as its IPv4
address everywhere.
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
    "loopback": ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
    "metadata": (
        "169.254.169.254/32",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
        "169.254.170.2/32",  # AWS ECS task metadata
        "fd00:ec2::254/128",  # AWS IMDS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "168.63.129.16/32",  # Azure WireServer
        "192.0.0.192/32",  # Oracle Cloud (classic)
    ),
    "none": (),
}
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_COMPATIBLE = ipaddress.IPv6Network("::/96")


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


def _embedded(address: Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (see the module doc)."""
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE or any(address in prefix for prefix in _NAT64):
        return (low32,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


@functools.lru_cache(maxsize=1024)
def _parsed(ip: str) -> tuple[Address, tuple[ipaddress.IPv4Address, ...]]:
    """Parsing costs more than the check, and a burst connects to the same few addresses."""
    address = _normalise(ipaddress.ip_address(ip))
    return address, _embedded(address)


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

    def reaches(self, word: str) -> bool:
        """Whether any address of the range ``word`` names is allowed (a range only partly
        refused counts as reached)."""
        return any(self._reaches(network) for network in parse_ranges(word))

    def _reaches(self, network: Network) -> bool:
        if any(
            network.version == denied.version and network.subnet_of(denied)  # type: ignore[arg-type]
            for denied in self.deny
        ):
            return False
        return self.allow is None or any(network.overlaps(allowed) for allowed in self.allow)

    def refusal(self, ip: str | Address) -> str | None:
        """Why connecting to ``ip`` is refused, or None when it is allowed."""
        if isinstance(ip, str):
            address, inside = _parsed(ip)
        else:
            address = _normalise(ip)
            inside = _embedded(address)
        for judged in (address, *inside):
            if any(judged in network for network in self.deny):
                return f"destination {address} refused by DESTINATION_DENY"
        if self.allow is not None and not any(address in network for network in self.allow):
            return f"destination {address} refused by DESTINATION_ALLOW"
        return None
