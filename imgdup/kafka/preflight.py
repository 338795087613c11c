"""Settings -> one connection to the broker opened as the workers' aiokafka clients open it (TLS,
SASL login, a metadata request), or the reason it fails in one line (`imgdup worker` start-up).

Faust itself reports a refused TLS handshake or login as aiokafka's log lines and retries without
end; checking first turns a wrong password or an untrusted CA into one error and exit code 1."""

from __future__ import annotations

import asyncio
import ssl
import time

from imgdup.kafka.security import LOGIN_HINT, TLS_HINT, KafkaSecurityError, aiokafka_config, describe
from imgdup.settings import Settings


async def _open_once(host: str, port: int, settings: Settings) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    conn = await create_conn(
        host, port, client_id="imgdup-preflight", request_timeout_ms=10_000, **aiokafka_config(settings)
    )
    try:
        await conn.send(MetadataRequest([]))
    finally:
        conn.close()


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        hosts.append((host.strip("[]") or "localhost", int(port or 9092)))
    return hosts


async def check_broker(settings: Settings, *, give_up_after_s: float = 30.0) -> None:
    """Returns once one bootstrap server answered over the configured security. Raises
    KafkaSecurityError at once when TLS or the login is refused (trying again cannot help), and
    RuntimeError when no server answered within `give_up_after_s`."""
    from aiokafka import errors

    bootstrap = settings.bootstrap_servers()
    deadline = time.monotonic() + give_up_after_s
    last = "no attempt"
    while True:
        for host, port in _hosts(bootstrap):
            try:
                await asyncio.wait_for(_open_once(host, port, settings), 15)
                return
            except ssl.SSLError as exc:
                raise KafkaSecurityError(
                    f"Kafka broker at {host}:{port}: TLS handshake failed ({describe(settings)}):"
                    f" {exc}; {TLS_HINT}"
                ) from exc
            except (
                errors.SaslAuthenticationFailed,
                errors.UnsupportedSaslMechanismError,
                errors.IllegalSaslStateError,
            ) as exc:
                raise KafkaSecurityError(
                    f"Kafka broker at {host}:{port}: login refused ({describe(settings)}):"
                    f" {exc}; {LOGIN_HINT}"
                ) from exc
            except (OSError, TimeoutError, errors.KafkaError) as exc:
                last = f"{host}:{port}: {type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kafka broker at {bootstrap} is unreachable ({describe(settings)}): {last}")
        await asyncio.sleep(1.0)
