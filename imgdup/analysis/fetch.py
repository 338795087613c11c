"""Untrusted image URL -> bytes, with caps on time, bytes and redirects and a guard against SSRF."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchError(Exception):
    """A download that failed for a reason worth recording (reason is machine-readable)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    allowed_networks: Sequence[IPNetwork] = field(default_factory=tuple)

    @classmethod
    def from_cidrs(
        cls, cidrs: Sequence[str], *, timeout_s: float, max_bytes: int, max_redirects: int
    ) -> FetchPolicy:
        return cls(
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
            allowed_networks=tuple(ipaddress.ip_network(c, strict=False) for c in cidrs),
        )


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_public(address: IPAddress) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast and reserved are not public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


async def check_url(url: str, policy: FetchPolicy, resolver: Resolver) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("url_invalid", f"not an http(s) URL: {url[:200]}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolver(parts.hostname, port)
    except OSError as exc:
        raise FetchError("dns_error", f"{parts.hostname}: {exc}") from exc
    if not addresses:
        raise FetchError("dns_error", f"{parts.hostname} resolves to nothing")
    for text in addresses:
        address = ipaddress.ip_address(text)
        allowed = any(address in net for net in policy.allowed_networks)
        if not allowed and not is_public(address):
            raise FetchError("url_blocked", f"{parts.hostname} resolves to non-public {address}")


async def fetch_image(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy,
    *,
    resolver: Resolver = system_resolver,
) -> bytes:
    """GET `url` following at most `max_redirects` redirects, each target checked again."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _fetch(client, url, policy, resolver)
    except TimeoutError as exc:
        raise FetchError("timeout", f"no complete response within {policy.timeout_s}s") from exc


async def _fetch(client: httpx.AsyncClient, url: str, policy: FetchPolicy, resolver: Resolver) -> bytes:
    current = url
    for _ in range(policy.max_redirects + 1):
        await check_url(current, policy, resolver)
        try:
            async with client.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("http_error", "redirect without Location")
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise FetchError(f"http_{response.status_code}", f"GET {current[:200]}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                    raise FetchError("too_large", f"Content-Length {declared} > {policy.max_bytes}")
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > policy.max_bytes:
                        raise FetchError("too_large", f"more than {policy.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", str(exc) or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise FetchError("connect_error", str(exc) or type(exc).__name__) from exc
    raise FetchError("too_many_redirects", f"more than {policy.max_redirects} redirects")
