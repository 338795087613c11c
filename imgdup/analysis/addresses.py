"""IP addresses and host names from untrusted URLs -> whether imgdup may connect to them (the SSRF rule).

An IPv6 address can carry an IPv4 one that the network turns back into IPv4: mapped and
translated forms, NAT64, 6to4. Python 3.11's `is_global` calls `::7f00:1`, `64:ff9b::a9fe:a9fe`
or `2002:7f00:1::` global, so these are unwrapped here and the IPv4 inside is judged too; forms
with no legitimate use on the internet (IPv4-compatible, Teredo, site-local) are refused outright.
The tables are written out instead of trusting the stdlib, whose lists change between patch
releases."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class AddressRefused(Exception):
    """A host imgdup will not connect to: `reason` is `dns_error` or `url_blocked`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


_V4_NON_PUBLIC = _nets(
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)

# Checked in this order: the specific forms before the IPv4-compatible block that contains them.
_V6_NON_PUBLIC = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _rfc6052_ipv4(address: ipaddress.IPv6Address, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address embedded after a NAT64 prefix of `prefix_len` bits (RFC 6052 §2.2: bits
    64-71 are skipped)."""
    bits = f"{int(address):0128b}"
    if prefix_len == 96:
        v4 = bits[96:]
    elif prefix_len == 64:
        v4 = bits[72:104]
    else:
        v4 = bits[prefix_len:64] + bits[72 : 72 + 32 - (64 - prefix_len)]
    return ipaddress.IPv4Address(int(v4, 2))


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """The form and the IPv4 address(es) an IPv6 address carries, or None for a plain IPv6 address.

    The local-use NAT64 prefix may be used at any RFC 6052 length inside it (/48 to /96), so
    every reading of it is returned."""
    if address in _MAPPED:
        return "IPv4-mapped", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _TRANSLATED:
        return "IPv4-translated", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _NAT64:
        return "NAT64", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _NAT64_LOCAL:
        return "local-use NAT64", [_rfc6052_ipv4(address, n) for n in (48, 56, 64, 96)]
    if address in _SIX_TO_FOUR:
        return "6to4", [ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)]
    return None


def non_public_reason(address: IPAddress) -> str | None:
    """Why imgdup must not connect to `address` (None when it is a public unicast address)."""
    if isinstance(address, ipaddress.IPv4Address):
        for net, label in _V4_NON_PUBLIC:
            if address in net:
                return label
        return None if address.is_global else "not globally routable"
    embedded = embedded_ipv4(address)
    if embedded is not None:
        form, inner = embedded
        for v4 in inner:
            why = non_public_reason(v4)
            if why is not None:
                return f"{form} of {v4}: {why}"
        return None
    for net, label in _V6_NON_PUBLIC:
        if address in net:
            return label
    if address.scope_id:
        return "scoped"
    return None if address.is_global else "not globally routable"


def is_allowed(address: IPAddress, allowed_networks: Iterable[IPNetwork]) -> bool:
    """An operator's allowed network (IMGDUP_ALLOW_PRIVATE_NETWORKS) admits the address itself,
    or the IPv4 address an IPv4-mapped one is (the kernel connects to that IPv4 address)."""
    nets = list(allowed_networks)
    if any(address in net for net in nets):
        return True
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped is not None and any(mapped in net for net in nets)


def judge(host: str, addresses: Sequence[str], allowed_networks: Iterable[IPNetwork]) -> list[str]:
    """Every address of `host` must be public or allowed; one that is not refuses the host."""
    if not addresses:
        raise AddressRefused("dns_error", f"{host} resolves to nothing")
    nets = list(allowed_networks)
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError as exc:
            raise AddressRefused("dns_error", f"{host} resolves to {text[:60]!r}, not an address") from exc
        if is_allowed(address, nets):
            continue
        why = non_public_reason(address)
        if why is not None:
            raise AddressRefused("url_blocked", f"{host} resolves to non-public {address} ({why})")
    return list(addresses)


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve_and_judge(
    host: str, port: int, resolver: Resolver, allowed_networks: Iterable[IPNetwork]
) -> list[str]:
    """The addresses of `host` (an IP literal is its own), each judged; AddressRefused otherwise."""
    literal = ip_literal(host)
    if literal is not None:
        return judge(host, [str(literal)], allowed_networks)
    try:
        addresses = await resolver(host, port)
    except Exception as exc:  # OSError from getaddrinfo, UnicodeError for an over-long label, ...
        raise AddressRefused("dns_error", f"{host}: {type(exc).__name__}: {exc}") from exc
    return judge(host, addresses, allowed_networks)
