"""(host, port) of an untrusted URL -> a TCP connection to an address that was resolved once and judged
(imgdup.analysis.addresses), and the httpx transport that makes every connection that way.

This closes the DNS-rebinding race: checking a name and then letting the HTTP client resolve it
again to connect lets a hostile DNS server answer a public address to the check and 127.0.0.1 to
the connection. Here the network backend under httpcore's connection pool is the only place that
connects, and it connects to an address it judged itself or to one `fetch_image` resolved and
judged for this very request (`pinned`). httpcore still starts TLS with the URL's host name, so
SNI and certificate verification are the host name's, and the Host header is the URL's."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from imgdup.analysis.addresses import AddressRefused, IPNetwork, Resolver, judge, resolve_and_judge

# (host, port) -> the addresses fetch_image resolved and judged for the request being made in
# this task. A context variable: concurrent downloads each see only their own.
# A worker downloads a few images per event for a few events at a time.
DOWNLOAD_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16)

_PINNED: ContextVar[dict[tuple[str, int], tuple[str, ...]]] = ContextVar("imgdup_pinned_addresses")


@contextlib.contextmanager
def pinned(host: str, port: int, addresses: Sequence[str]) -> Iterator[None]:
    """Connections to (host, port) opened inside this block go to these addresses, not to a new lookup."""
    table = {**_PINNED.get({}), (host, port): tuple(addresses)}
    token = _PINNED.set(table)
    try:
        yield
    finally:
        _PINNED.reset(token)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to judged addresses.

    inner: the backend that opens the socket to the chosen IP address (httpcore's AnyIO backend;
    tests put a recorder here)."""

    def __init__(
        self,
        resolver: Resolver,
        allowed_networks: Iterable[IPNetwork] = (),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allowed = tuple(allowed_networks)
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        known = _PINNED.get({}).get((host, port))
        if known is not None:
            return judge(host, known, self._allowed)
        return await resolve_and_judge(host, port, self._resolver, self._allowed)

    # The signatures are httpcore's (AsyncNetworkBackend): `timeout` is its per-operation limit.
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next judged address may answer
        assert failure is not None  # judge() never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("url_blocked", "Unix sockets are never connected to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP transport (its request mapping, exception mapping, streaming) on a connection
    pool whose every connection goes through a GuardedBackend. No proxy, no environment."""

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DOWNLOAD_LIMITS,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend: replace it (it holds no
        # connection yet). tests/analysis/test_analysis_guarded.py fails if this stops working.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
