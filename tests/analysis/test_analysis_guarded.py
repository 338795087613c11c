"""Consumes imgdup.analysis.guarded through fetch_image: connections go only to the addresses that were
resolved once and judged, with the URL's host name kept for the Host header, SNI and certificate checks.

These tests use real loopback sockets (a local HTTP and HTTPS server); nothing leaves the machine:
a connection to any other address is refused by `LoopbackOnly` before a socket is opened."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from imgdup.analysis.addresses import AddressRefused
from imgdup.analysis.fetch import FetchError, FetchPolicy, fetch_image, open_transport
from imgdup.analysis.guarded import GuardedBackend, GuardedTransport

PUBLIC = "93.184.216.34"
BODY = b"\x89PNG loopback image"


@dataclass
class Seen:
    hosts: list[str] = field(default_factory=list)  # Host header of each request served
    sni: list[str | None] = field(default_factory=list)


class Server:
    """A loopback HTTP(S) server that records what reached it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        seen = self.seen = Seen()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                seen.hosts.append(self.headers.get("Host", ""))
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)  # type: ignore[assignment]
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


class Rebinding:
    """A hostile DNS server: a public address for the first question, 127.0.0.1 afterwards."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return [PUBLIC] if len(self.calls) == 1 else ["127.0.0.1"]


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The socket layer under the guard: records every address it is asked to connect to and
    opens real sockets to loopback only (these tests never reach the internet)."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if not host.startswith("127."):
            raise httpcore.ConnectError(f"test network: {host} is unreachable")
        return await self._real.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


POLICY = FetchPolicy(timeout_s=5.0, max_bytes=1024, max_redirects=2)
LOOPBACK_ALLOWED = FetchPolicy.from_cidrs(["127.0.0.0/8"], timeout_s=5.0, max_bytes=1024, max_redirects=2)


def guarded(policy: FetchPolicy, resolver: Any, inner: LoopbackOnly, **options: Any) -> GuardedTransport:
    return GuardedTransport(GuardedBackend(resolver, policy.allowed_networks, inner), **options)


async def test_a_name_rebound_to_loopback_after_the_check_never_reaches_loopback(server: Server) -> None:
    """Issue 12: the name is checked (public) and then connected to; the connection goes to the
    checked address, never to the 127.0.0.1 a second lookup would answer."""
    resolver, sockets = Rebinding(), LoopbackOnly()
    url = f"http://rebind.example.com:{server.port}/img.jpg"
    async with guarded(POLICY, resolver, sockets) as transport:
        with pytest.raises(FetchError) as caught:
            await fetch_image(transport, url, POLICY, resolver=resolver)
    assert caught.value.reason == "connect_error"  # the public address is unreachable here
    assert sockets.connects == [(PUBLIC, server.port)]
    assert resolver.calls == [("rebind.example.com", server.port)]  # resolved once
    assert server.seen.hosts == []


async def test_the_race_is_real_with_httpx_s_own_transport(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: the same check in front of httpx's plain transport, which
    resolves the name again to connect, is walked past to loopback (the old design)."""
    real_getaddrinfo = socket.getaddrinfo

    def rebound(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("rebind.example.com", b"rebind.example.com"):  # anyio asks in IDNA bytes
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    url = f"http://rebind.example.com:{server.port}/img.jpg"
    async with httpx.AsyncHTTPTransport(trust_env=False) as plain:
        body = await fetch_image(plain, url, POLICY, resolver=Rebinding())
    assert body == BODY
    assert server.seen.hosts == [f"rebind.example.com:{server.port}"]


async def test_the_transport_alone_judges_what_it_resolves(server: Server) -> None:
    """Without fetch_image's check (a caller using the transport directly), the backend resolves
    and judges itself: loopback is refused before any socket is opened."""

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    sockets = LoopbackOnly()
    async with (
        guarded(POLICY, loopback, sockets) as transport,
        httpx.AsyncClient(transport=transport) as client,
    ):
        with pytest.raises(AddressRefused) as caught:
            await client.get(f"http://evil.example.com:{server.port}/")
    assert caught.value.reason == "url_blocked"
    assert sockets.connects == [] and server.seen.hosts == []


async def test_the_host_name_is_kept_and_the_next_judged_address_is_tried(server: Server) -> None:
    async def two(host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]  # nothing listens on .2: refused, then .1

    sockets = LoopbackOnly()
    url = f"http://images.example.com:{server.port}/a.jpg"
    async with guarded(LOOPBACK_ALLOWED, two, sockets) as transport:
        assert await fetch_image(transport, url, LOOPBACK_ALLOWED, resolver=two) == BODY
    assert sockets.connects == [("127.0.0.2", server.port), ("127.0.0.1", server.port)]
    assert server.seen.hosts == [f"images.example.com:{server.port}"]


async def test_open_transport_refuses_a_loopback_literal_without_a_policy_exception(server: Server) -> None:
    async with open_transport(POLICY) as transport, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AddressRefused):
            await client.get(f"http://127.0.0.1:{server.port}/")
    assert server.seen.hosts == []


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for images.example.com (and only that name)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=images.example.com"
    subprocess.run(
        [*command.split(), "-addext", "subjectAltName=DNS:images.example.com", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    s = Server(tls=context)
    yield s
    s.close()


async def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_tls_to_the_checked_address_verifies_the_host_name(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    sockets = LoopbackOnly()
    url = f"https://images.example.com:{tls_server.port}/a.jpg"
    async with guarded(LOOPBACK_ALLOWED, _to_loopback, sockets, verify=trust) as transport:
        assert await fetch_image(transport, url, LOOPBACK_ALLOWED, resolver=_to_loopback) == BODY
    assert sockets.connects == [("127.0.0.1", tls_server.port)]  # connected to the IP ...
    assert tls_server.seen.sni == ["images.example.com"]  # ... with the name as SNI
    assert tls_server.seen.hosts == [f"images.example.com:{tls_server.port}"]


async def test_tls_certificate_of_another_name_is_refused(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    """The certificate is checked against the URL's host name, not against the IP connected to."""
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    url = f"https://cdn.example.net:{tls_server.port}/a.jpg"
    async with guarded(LOOPBACK_ALLOWED, _to_loopback, LoopbackOnly(), verify=trust) as transport:
        with pytest.raises(FetchError) as caught:
            await fetch_image(transport, url, LOOPBACK_ALLOWED, resolver=_to_loopback)
    assert caught.value.reason == "connect_error"
    assert "certificate" in caught.value.detail.lower() or "hostname" in caught.value.detail.lower()
    assert tls_server.seen.hosts == []
