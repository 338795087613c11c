"""Untrusted image URL -> bytes, with caps on time, bytes and redirects and a guard against SSRF.

Every URL and redirect target is parsed strictly, and its host resolved once and judged
(imgdup.analysis.addresses); the request goes through `open_transport`'s transport, which connects
to those judged addresses only (imgdup.analysis.guarded). Redirects are followed here, not by an
HTTP client, so that a hostile Location header is this code's input and never anyone's exception.
Whatever goes wrong is a FetchError with a machine-readable reason: one image's failure."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from imgdup.analysis.addresses import (
    AddressRefused,
    IPNetwork,
    Resolver,
    non_public_reason,
    resolve_and_judge,
    system_resolver,
)
from imgdup.analysis.guarded import DOWNLOAD_LIMITS, GuardedBackend, GuardedTransport, pinned

__all__ = [
    "FetchError",
    "FetchPolicy",
    "fetch_image",
    "is_public",
    "open_transport",
    "parse_url",
    "redirect_target",
    "system_resolver",
]

HEADERS = {
    "User-Agent": "imgdup/0.1 (+duplicate photo detection)",
    "Accept": "image/*,*/*;q=0.5",
    "Accept-Encoding": "gzip, deflate",
}


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


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast, reserved and the IPv6 forms
    that carry such an IPv4 address are not public."""
    return non_public_reason(address) is None


def open_transport(
    policy: FetchPolicy,
    *,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits = DOWNLOAD_LIMITS,
) -> GuardedTransport:
    """The transport the workers download through: it connects only to judged addresses."""
    return GuardedTransport(GuardedBackend(resolver, policy.allowed_networks), verify=verify, limits=limits)


_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9._:-]+")


def parse_url(text: str) -> httpx.URL:
    """An untrusted absolute URL -> the httpx.URL to request, or FetchError `url_invalid`.

    Parsed by httpx (what the transport is given) and by urllib (strict about the port: no sign,
    no number over 65535), so that a URL the two read differently is refused instead of guessed."""
    try:
        url = httpx.URL(text)
        split_port = urlsplit(text).port
    except Exception as exc:  # httpx.InvalidURL, ValueError, UnicodeError: all one verdict
        raise FetchError("url_invalid", f"{type(exc).__name__}: {exc}: {text[:200]}") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise FetchError("url_invalid", f"not an absolute http(s) URL: {text[:200]}")
    host = url.raw_host.decode("ascii", "replace")
    if not _HOST_CHARACTERS.fullmatch(host):
        raise FetchError("url_invalid", f"host {host[:100]!r} is not a name or an IP address")
    if url.port != split_port or (url.port is not None and not 0 < url.port < 65536):
        raise FetchError("url_invalid", f"bad port in {text[:200]}")
    return url


def redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    """A Location header resolved against the URL that sent it, then parsed like any URL.

    A Location with a scheme is absolute and must carry a host (RFC 9110: an http URI with no
    host is invalid), so `http:127.0.0.1:8080/x` is refused rather than read as a path."""
    try:
        target = location if urlsplit(location).scheme else str(current.join(location))
    except Exception as exc:
        raise FetchError("url_invalid", f"redirect to {location[:200]!r}: {type(exc).__name__}") from exc
    return parse_url(target)


def _origin(url: httpx.URL) -> tuple[str, int]:
    """(host, port) exactly as httpcore will ask the network backend to connect to them."""
    return url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80)


async def fetch_image(
    transport: httpx.AsyncBaseTransport,
    url: str,
    policy: FetchPolicy,
    *,
    resolver: Resolver = system_resolver,
) -> bytes:
    """GET `url` following at most `max_redirects` redirects, each target checked again.

    Every failure is a FetchError: what the URL or the server did wrong has its own reason;
    anything else is `fetch_error` with the exception's class, so one image's download never
    raises anything else into the processing of its ad."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _fetch(transport, url, policy, resolver)
    except TimeoutError as exc:
        raise FetchError("timeout", f"no complete response within {policy.timeout_s}s") from exc
    except FetchError:
        raise
    except AddressRefused as refused:  # the transport's own check, at connect time
        raise FetchError(refused.reason, refused.detail) from refused
    except Exception as exc:
        raise FetchError("fetch_error", f"{type(exc).__name__}: {exc}"[:500]) from exc


async def _fetch(
    transport: httpx.AsyncBaseTransport, url: str, policy: FetchPolicy, resolver: Resolver
) -> bytes:
    current = parse_url(url)
    timeout = httpx.Timeout(policy.timeout_s).as_dict()
    for _ in range(policy.max_redirects + 1):
        host, port = _origin(current)
        try:
            addresses = await resolve_and_judge(host, port, resolver, policy.allowed_networks)
        except AddressRefused as refused:
            raise FetchError(refused.reason, refused.detail) from refused
        request = httpx.Request("GET", current, headers=HEADERS, extensions={"timeout": timeout})
        try:
            with pinned(host, port, addresses):
                response = await transport.handle_async_request(request)
                try:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError("http_error", "redirect without Location")
                        current = redirect_target(current, location)
                        continue
                    return await _body(response, current, policy)
                finally:
                    await response.aclose()
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", str(exc) or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise FetchError("connect_error", str(exc) or type(exc).__name__) from exc
    raise FetchError("too_many_redirects", f"more than {policy.max_redirects} redirects")


async def _body(response: httpx.Response, url: httpx.URL, policy: FetchPolicy) -> bytes:
    if response.status_code != 200:
        raise FetchError(f"http_{response.status_code}", f"GET {str(url)[:200]}")
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
