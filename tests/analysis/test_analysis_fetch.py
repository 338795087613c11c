"""Consumes imgdup.analysis.fetch: caps and SSRF guard, against a mock transport and an injected resolver.

No real connection or DNS query is made: every request goes to httpx.MockTransport, and every
name is resolved by `FakeResolver`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from imgdup.analysis.fetch import FetchError, FetchPolicy, fetch_image, system_resolver

PUBLIC = "93.184.216.34"
IMAGE = b"\x89PNG fake image bytes"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class FakeResolver:
    """Host -> addresses from a table; IP literals resolve to themselves."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = {"cdn.example.com": [PUBLIC], **(table or {})}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return self.table[host]


class Recorder:
    """A MockTransport handler that records every request it is asked to serve."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.respond(request)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


async def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any real DNS query or connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"real network use: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


async def test_network_guard_is_active() -> None:
    """Proves the guard above works: the real resolver is refused inside these tests."""
    with pytest.raises(AssertionError, match="real network use"):
        await system_resolver("cdn.example.com", 443)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(ok)


@pytest.fixture
def transport(recorder: Recorder) -> httpx.MockTransport:
    return httpx.MockTransport(recorder)


POLICY = FetchPolicy(timeout_s=2.0, max_bytes=1024, max_redirects=3)


async def fetch_error(
    transport: httpx.MockTransport, url: str, resolver: FakeResolver, **policy: Any
) -> FetchError:
    chosen = dataclasses.replace(POLICY, **policy)
    with pytest.raises(FetchError) as caught:
        await fetch_image(transport, url, chosen, resolver=resolver)
    return caught.value


async def test_public_url_fetched(transport: httpx.MockTransport, recorder: Recorder) -> None:
    resolver = FakeResolver()
    body = await fetch_image(transport, "https://cdn.example.com/a.png", POLICY, resolver=resolver)
    assert body == IMAGE
    assert recorder.urls == ["https://cdn.example.com/a.png"]
    assert resolver.calls == [("cdn.example.com", 443)]


async def test_resolver_gets_explicit_port(transport: httpx.MockTransport) -> None:
    resolver = FakeResolver()
    await fetch_image(transport, "http://cdn.example.com:8080/a.png", POLICY, resolver=resolver)
    assert resolver.calls == [("cdn.example.com", 8080)]


NON_PUBLIC = [
    "127.0.0.1",
    "127.1.2.3",
    "0.0.0.0",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # cloud metadata (link-local)
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped IPv6
    "::ffff:169.254.169.254",
    "::ffff:10.1.2.3",
    "::ffff:224.0.0.1",  # mapped multicast: the stdlib calls it global, is_public must not
    # IPv6 forms that carry an IPv4 address (issue 12): Python 3.11 calls each of these global.
    "::7f00:1",  # IPv4-compatible ::/96 (127.0.0.1)
    "::5db8:d822",  # IPv4-compatible, even of a public address: deprecated, never legitimate
    "::ffff:0:7f00:1",  # IPv4-translated ::ffff:0:0:0/96 (127.0.0.1)
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254: the metadata service on a NAT64 network
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215), /96 layout
    "64:ff9b:1:7f00:0:100::",  # local-use NAT64, /48 layout of 127.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001::1",  # Teredo
    "fec0::1",  # site-local (deprecated)
    "5f00::1",  # segment-routing SIDs
    "3fff::1",  # documentation
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
    "192.0.0.9",  # IETF protocol assignments
    "192.88.99.1",  # 6to4 relay anycast
    "198.51.100.7",  # documentation
]


@pytest.mark.parametrize("address", NON_PUBLIC)
async def test_non_public_address_blocked(
    transport: httpx.MockTransport, recorder: Recorder, address: str
) -> None:
    resolver = FakeResolver({"evil.example.com": [address]})
    error = await fetch_error(transport, "http://evil.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.requests == []


PUBLIC_FORMS = [
    PUBLIC,
    f"::ffff:{PUBLIC}",
    "2606:2800:220:1:248:1893:25c8:1946",
    "64:ff9b::5db8:d822",  # NAT64 of a public address: how DNS64 answers on an IPv6-only network
    "2002:5db8:d822::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", PUBLIC_FORMS)
async def test_public_address_allowed(
    transport: httpx.MockTransport, recorder: Recorder, address: str
) -> None:
    resolver = FakeResolver({"ok.example.com": [address]})
    assert await fetch_image(transport, "http://ok.example.com/a.png", POLICY, resolver=resolver) == IMAGE
    assert recorder.urls == ["http://ok.example.com/a.png"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest/meta-data/"]
)
async def test_ip_literal_blocked(transport: httpx.MockTransport, recorder: Recorder, url: str) -> None:
    error = await fetch_error(transport, url, FakeResolver())
    assert error.reason == "url_blocked"
    assert recorder.requests == []


async def test_any_non_public_address_of_a_name_blocks_it(
    transport: httpx.MockTransport, recorder: Recorder
) -> None:
    resolver = FakeResolver({"mixed.example.com": [PUBLIC, "10.0.0.1"]})
    error = await fetch_error(transport, "http://mixed.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.requests == []


async def test_allowed_network_lets_private_address_through(
    transport: httpx.MockTransport, recorder: Recorder
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.0/8"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    body = await fetch_image(transport, "http://127.0.0.1:8765/a.png", policy, resolver=FakeResolver())
    assert body == IMAGE
    assert recorder.urls == ["http://127.0.0.1:8765/a.png"]


async def test_allowed_network_is_not_a_blanket_exemption(
    transport: httpx.MockTransport, recorder: Recorder
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.0/8"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    with pytest.raises(FetchError) as caught:
        await fetch_image(transport, "http://10.0.0.1/a.png", policy, resolver=FakeResolver())
    assert caught.value.reason == "url_blocked"
    assert recorder.requests == []


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "127.0.0.1"])
async def test_allowed_ipv4_network_admits_its_mapped_form(
    transport: httpx.MockTransport, recorder: Recorder, address: str
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.1/32"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    resolver = FakeResolver({"demo.example.com": [address]})
    assert await fetch_image(transport, "http://demo.example.com/a.png", policy, resolver=resolver) == IMAGE


@pytest.mark.parametrize("address", ["::7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::", "::ffff:0:7f00:1"])
async def test_allowed_ipv4_network_does_not_admit_other_wrappings(
    transport: httpx.MockTransport, recorder: Recorder, address: str
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.1/32"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    resolver = FakeResolver({"demo.example.com": [address]})
    error = await fetch_error(
        transport, "http://demo.example.com/a.png", resolver, allowed_networks=policy.allowed_networks
    )
    assert error.reason == "url_blocked"
    assert recorder.requests == []


@pytest.mark.parametrize("cidr,address", [("fec0::/10", "fec0::1"), ("64:ff9b::/96", "64:ff9b::a9fe:a9fe")])
async def test_an_allowed_network_still_allows_the_special_forms(
    transport: httpx.MockTransport, cidr: str, address: str
) -> None:
    policy = FetchPolicy.from_cidrs([cidr], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    resolver = FakeResolver({"lab.example.com": [address]})
    assert await fetch_image(transport, "http://lab.example.com/a.png", policy, resolver=resolver) == IMAGE


async def test_allowed_ipv6_network(transport: httpx.MockTransport) -> None:
    policy = FetchPolicy.from_cidrs(["::1/128"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    assert await fetch_image(transport, "http://[::1]:8765/a.png", policy, resolver=FakeResolver()) == IMAGE


def redirecting(chain: dict[str, str]) -> Handler:
    """Redirect each URL in `chain` to its target; serve the image anywhere else."""

    async def respond(request: httpx.Request) -> httpx.Response:
        target = chain.get(str(request.url))
        if target is not None:
            return httpx.Response(302, headers={"location": target})
        return await ok(request)

    return respond


async def test_redirect_to_private_address_blocked() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "http://internal.example.com/x"}))
    resolver = FakeResolver({"internal.example.com": ["10.0.0.7"]})
    transport = httpx.MockTransport(recorder)
    error = await fetch_error(transport, "https://cdn.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.urls == ["https://cdn.example.com/a.png"]


async def test_redirect_to_metadata_ip_literal_blocked() -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": metadata}))
    transport = httpx.MockTransport(recorder)
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "url_blocked"
    assert metadata not in recorder.urls


async def test_relative_redirect_followed() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "/b.png"}))
    transport = httpx.MockTransport(recorder)
    body = await fetch_image(transport, "https://cdn.example.com/a.png", POLICY, resolver=FakeResolver())
    assert body == IMAGE
    assert recorder.urls == ["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"]


async def test_max_redirects_followed_exactly() -> None:
    base = "https://cdn.example.com/"
    recorder = Recorder(redirecting({f"{base}{i}": f"{base}{i + 1}" for i in range(3)}))
    transport = httpx.MockTransport(recorder)
    body = await fetch_image(transport, f"{base}0", POLICY, resolver=FakeResolver())
    assert body == IMAGE
    assert len(recorder.requests) == 4


async def test_redirect_loop_stops() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "https://cdn.example.com/a.png"}))
    transport = httpx.MockTransport(recorder)
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "too_many_redirects"
    assert len(recorder.requests) == POLICY.max_redirects + 1


async def test_redirect_without_location() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(302)

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "http_error"
    assert "Location" in error.detail


@pytest.mark.parametrize("status", [404, 403, 500, 204])
async def test_http_status_reported(status: int) -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status)

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == f"http_{status}"


async def test_too_large_by_content_length() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (POLICY.max_bytes + 1))

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "too_large"
    assert "Content-Length" in error.detail


async def test_too_large_while_streaming_without_content_length() -> None:
    produced: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(100):
            produced.append(i)
            yield b"x" * 100

    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "too_large"
    assert "Content-Length" not in error.detail
    # It stops reading as soon as the cap is passed instead of draining the body.
    assert len(produced) < 100


async def test_body_of_exactly_max_bytes_accepted() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 256

    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    transport = httpx.MockTransport(Recorder(respond))
    body = await fetch_image(transport, "https://cdn.example.com/a.png", POLICY, resolver=FakeResolver())
    assert body == b"y" * 1024


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cdn.example.com/a.png",
        "file:///etc/passwd",
        "gopher://cdn.example.com/",
        "javascript:alert(1)",
        "cdn.example.com/a.png",
        "http:///a.png",
    ],
)
async def test_non_http_url_invalid(transport: httpx.MockTransport, recorder: Recorder, url: str) -> None:
    resolver = FakeResolver()
    error = await fetch_error(transport, url, resolver)
    assert error.reason == "url_invalid"
    assert resolver.calls == []
    assert recorder.requests == []


async def test_unresolvable_host(transport: httpx.MockTransport, recorder: Recorder) -> None:
    error = await fetch_error(transport, "https://nowhere.example.com/a.png", FakeResolver())
    assert error.reason == "dns_error"
    assert recorder.requests == []


async def test_host_resolving_to_nothing(transport: httpx.MockTransport, recorder: Recorder) -> None:
    error = await fetch_error(
        transport, "https://empty.example.com/", FakeResolver({"empty.example.com": []})
    )
    assert error.reason == "dns_error"
    assert recorder.requests == []


async def test_slow_response_times_out() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=IMAGE)

    transport = httpx.MockTransport(Recorder(respond))
    loop = asyncio.get_running_loop()
    started = loop.time()
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver(), timeout_s=0.05)
    elapsed = loop.time() - started
    assert error.reason == "timeout"
    assert elapsed < 1.0


async def test_slow_body_times_out() -> None:
    """The time cap covers the whole download, not each read (no slow-drip bypass)."""

    async def drip() -> AsyncIterator[bytes]:
        for _ in range(100):
            await asyncio.sleep(0.02)
            yield b"z"

    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=drip())

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver(), timeout_s=0.1)
    assert error.reason == "timeout"


async def test_transport_timeout_reported_as_timeout() -> None:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "timeout"


async def test_connection_failure_reported() -> None:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "connect_error"


def test_policy_from_cidrs_parses_networks() -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.1/8", "fd00::/8"], timeout_s=1.0, max_bytes=10, max_redirects=0)
    assert [str(n) for n in policy.allowed_networks] == ["127.0.0.0/8", "fd00::/8"]
    assert (policy.timeout_s, policy.max_bytes, policy.max_redirects) == (1.0, 10, 0)


# --------------------------------------------------------------------------- malformed URLs and redirects


BAD_REDIRECTS = [
    "http://host:99999/img.jpg",  # port out of range (urlsplit raised ValueError, the ad went dead)
    "http://h:+18081/",  # a sign is not a port
    "http://h:0/",  # port 0 is no port
    "https:127.0.0.1:18080/x",  # a scheme without an authority: no host
    "http:127.0.0.1:18080/x",  # the same, with the scheme of the URL that redirects
    "http://[::1/x",  # unclosed IPv6 literal (httpx.InvalidURL, which is not an httpx.HTTPError)
    "http://[fe80::1%25eth0]/x",  # IPv6 zone id
    "http://a\\b/x",  # a backslash in the host
    "ftp://cdn.example.com/a.png",  # not http(s)
]


@pytest.mark.parametrize("location", BAD_REDIRECTS)
async def test_redirect_to_a_malformed_url_is_a_reasoned_failure(location: str) -> None:
    recorder = Recorder(redirecting({"http://cdn.example.com/a.png": location}))
    resolver = FakeResolver({"host": [PUBLIC], "h": [PUBLIC]})
    transport = httpx.MockTransport(recorder)
    error = await fetch_error(transport, "http://cdn.example.com/a.png", resolver)
    assert error.reason == "url_invalid", error
    assert recorder.urls == ["http://cdn.example.com/a.png"]


@pytest.mark.parametrize("url", BAD_REDIRECTS)
async def test_malformed_url_is_invalid_before_any_lookup(
    transport: httpx.MockTransport, recorder: Recorder, url: str
) -> None:
    resolver = FakeResolver({"host": [PUBLIC], "h": [PUBLIC]})
    error = await fetch_error(transport, url, resolver)
    assert error.reason == "url_invalid", error
    assert resolver.calls == [] and recorder.requests == []


async def test_scheme_relative_redirect_is_checked_like_any_other() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "//internal.example.com/x"}))
    resolver = FakeResolver({"internal.example.com": ["10.0.0.7"]})
    transport = httpx.MockTransport(recorder)
    error = await fetch_error(transport, "https://cdn.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert resolver.calls[-1] == ("internal.example.com", 443)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.InvalidURL("Invalid port: '99999'"),
        ValueError("Port out of range 0-65535"),
        RuntimeError("a bug somewhere below"),
        OverflowError("getsockaddrarg: port must be 0-65535."),
    ],
)
async def test_any_unexpected_exception_is_this_image_s_fetch_error(exc: Exception) -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        raise exc

    transport = httpx.MockTransport(Recorder(respond))
    error = await fetch_error(transport, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "fetch_error"
    assert type(exc).__name__ in error.detail


async def test_a_resolver_that_raises_anything_is_a_dns_error(
    transport: httpx.MockTransport, recorder: Recorder
) -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise UnicodeError("label too long")

    with pytest.raises(FetchError) as caught:
        await fetch_image(transport, "https://cdn.example.com/a.png", POLICY, resolver=broken)
    assert caught.value.reason == "dns_error"
    assert recorder.requests == []
