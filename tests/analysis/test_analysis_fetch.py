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
async def client(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as c:
        yield c


POLICY = FetchPolicy(timeout_s=2.0, max_bytes=1024, max_redirects=3)


async def fetch_error(
    client: httpx.AsyncClient, url: str, resolver: FakeResolver, **policy: Any
) -> FetchError:
    chosen = dataclasses.replace(POLICY, **policy)
    with pytest.raises(FetchError) as caught:
        await fetch_image(client, url, chosen, resolver=resolver)
    return caught.value


async def test_public_url_fetched(client: httpx.AsyncClient, recorder: Recorder) -> None:
    resolver = FakeResolver()
    body = await fetch_image(client, "https://cdn.example.com/a.png", POLICY, resolver=resolver)
    assert body == IMAGE
    assert recorder.urls == ["https://cdn.example.com/a.png"]
    assert resolver.calls == [("cdn.example.com", 443)]


async def test_resolver_gets_explicit_port(client: httpx.AsyncClient) -> None:
    resolver = FakeResolver()
    await fetch_image(client, "http://cdn.example.com:8080/a.png", POLICY, resolver=resolver)
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
]


@pytest.mark.parametrize("address", NON_PUBLIC)
async def test_non_public_address_blocked(
    client: httpx.AsyncClient, recorder: Recorder, address: str
) -> None:
    resolver = FakeResolver({"evil.example.com": [address]})
    error = await fetch_error(client, "http://evil.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.requests == []


@pytest.mark.parametrize("address", [PUBLIC, f"::ffff:{PUBLIC}", "2606:2800:220:1:248:1893:25c8:1946"])
async def test_public_address_allowed(client: httpx.AsyncClient, recorder: Recorder, address: str) -> None:
    resolver = FakeResolver({"ok.example.com": [address]})
    assert await fetch_image(client, "http://ok.example.com/a.png", POLICY, resolver=resolver) == IMAGE
    assert recorder.urls == ["http://ok.example.com/a.png"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest/meta-data/"]
)
async def test_ip_literal_blocked(client: httpx.AsyncClient, recorder: Recorder, url: str) -> None:
    error = await fetch_error(client, url, FakeResolver())
    assert error.reason == "url_blocked"
    assert recorder.requests == []


async def test_any_non_public_address_of_a_name_blocks_it(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    resolver = FakeResolver({"mixed.example.com": [PUBLIC, "10.0.0.1"]})
    error = await fetch_error(client, "http://mixed.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.requests == []


async def test_allowed_network_lets_private_address_through(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.0/8"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    body = await fetch_image(client, "http://127.0.0.1:8765/a.png", policy, resolver=FakeResolver())
    assert body == IMAGE
    assert recorder.urls == ["http://127.0.0.1:8765/a.png"]


async def test_allowed_network_is_not_a_blanket_exemption(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.0/8"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    with pytest.raises(FetchError) as caught:
        await fetch_image(client, "http://10.0.0.1/a.png", policy, resolver=FakeResolver())
    assert caught.value.reason == "url_blocked"
    assert recorder.requests == []


async def test_allowed_ipv6_network(client: httpx.AsyncClient) -> None:
    policy = FetchPolicy.from_cidrs(["::1/128"], timeout_s=2.0, max_bytes=1024, max_redirects=3)
    assert await fetch_image(client, "http://[::1]:8765/a.png", policy, resolver=FakeResolver()) == IMAGE


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
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", resolver)
    assert error.reason == "url_blocked"
    assert recorder.urls == ["https://cdn.example.com/a.png"]


async def test_redirect_to_metadata_ip_literal_blocked() -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": metadata}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "url_blocked"
    assert metadata not in recorder.urls


async def test_relative_redirect_followed() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "/b.png"}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        body = await fetch_image(client, "https://cdn.example.com/a.png", POLICY, resolver=FakeResolver())
    assert body == IMAGE
    assert recorder.urls == ["https://cdn.example.com/a.png", "https://cdn.example.com/b.png"]


async def test_max_redirects_followed_exactly() -> None:
    base = "https://cdn.example.com/"
    recorder = Recorder(redirecting({f"{base}{i}": f"{base}{i + 1}" for i in range(3)}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        body = await fetch_image(client, f"{base}0", POLICY, resolver=FakeResolver())
    assert body == IMAGE
    assert len(recorder.requests) == 4


async def test_redirect_loop_stops() -> None:
    recorder = Recorder(redirecting({"https://cdn.example.com/a.png": "https://cdn.example.com/a.png"}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "too_many_redirects"
    assert len(recorder.requests) == POLICY.max_redirects + 1


async def test_redirect_without_location() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(302)

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "http_error"
    assert "Location" in error.detail


@pytest.mark.parametrize("status", [404, 403, 500, 204])
async def test_http_status_reported(status: int) -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status)

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == f"http_{status}"


async def test_too_large_by_content_length() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (POLICY.max_bytes + 1))

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
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

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
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

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        body = await fetch_image(client, "https://cdn.example.com/a.png", POLICY, resolver=FakeResolver())
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
async def test_non_http_url_invalid(client: httpx.AsyncClient, recorder: Recorder, url: str) -> None:
    resolver = FakeResolver()
    error = await fetch_error(client, url, resolver)
    assert error.reason == "url_invalid"
    assert resolver.calls == []
    assert recorder.requests == []


async def test_unresolvable_host(client: httpx.AsyncClient, recorder: Recorder) -> None:
    error = await fetch_error(client, "https://nowhere.example.com/a.png", FakeResolver())
    assert error.reason == "dns_error"
    assert recorder.requests == []


async def test_host_resolving_to_nothing(client: httpx.AsyncClient, recorder: Recorder) -> None:
    error = await fetch_error(client, "https://empty.example.com/", FakeResolver({"empty.example.com": []}))
    assert error.reason == "dns_error"
    assert recorder.requests == []


async def test_slow_response_times_out() -> None:
    async def respond(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=IMAGE)

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver(), timeout_s=0.05)
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

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver(), timeout_s=0.1)
    assert error.reason == "timeout"


async def test_transport_timeout_reported_as_timeout() -> None:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "timeout"


async def test_connection_failure_reported() -> None:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(Recorder(respond))) as client:
        error = await fetch_error(client, "https://cdn.example.com/a.png", FakeResolver())
    assert error.reason == "connect_error"


def test_policy_from_cidrs_parses_networks() -> None:
    policy = FetchPolicy.from_cidrs(["127.0.0.1/8", "fd00::/8"], timeout_s=1.0, max_bytes=10, max_redirects=0)
    assert [str(n) for n in policy.allowed_networks] == ["127.0.0.0/8", "fd00::/8"]
    assert (policy.timeout_s, policy.max_bytes, policy.max_redirects) == (1.0, 10, 0)
