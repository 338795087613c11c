"""Consumes imgdup.kafka.security: one group of settings -> the same meaning for every Kafka client
(the confluent-kafka producer and admin client, aiokafka, and Faust's credentials)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from helpers.certs import Pki, make_pki
from pydantic import SecretStr

from imgdup.kafka import publisher, topic_admin
from imgdup.kafka.security import (
    KafkaSecurityError,
    aiokafka_config,
    confluent_config,
    faust_credentials,
    security_env,
)
from imgdup.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
PASSWORD = "pw-do-not-log-4711"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _settings(protocol: str, pki: Pki, *, client_cert: bool = True, **extra: Any) -> Settings:
    fields: dict[str, Any] = {"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_security_protocol": protocol}
    if "SSL" in protocol:
        fields["kafka_ssl_cafile"] = pki.ca
        if client_cert:
            fields.update(kafka_ssl_certfile=pki.client_cert, kafka_ssl_keyfile=pki.client_key)
    if protocol.startswith("SASL"):
        fields.update(
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="imgdup",
            kafka_sasl_password=SecretStr(PASSWORD),
        )
    return Settings(**{**fields, **extra})


def _subjects(certs: list[dict[str, Any]]) -> list[str]:
    return sorted(str(cert["subject"]) for cert in certs)


def _file_subjects(path: str) -> list[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(path)
    return _subjects(context.get_ca_certs())


def meaning_of_confluent(config: Mapping[str, str]) -> dict[str, Any]:
    """What a librdkafka configuration does: TLS or not, how the broker is verified, which login."""
    protocol = config["security.protocol"].upper()
    meaning: dict[str, Any] = {"protocol": protocol, "tls": "SSL" in protocol, "sasl": None}
    if meaning["tls"]:
        meaning["verifies_broker"] = (
            config.get("enable.ssl.certificate.verification", "true") == "true"
            and config.get("ssl.endpoint.identification.algorithm") == "https"
        )
        location = config["ssl.ca.location"]
        meaning["trusts"] = "system" if location == "probe" else _file_subjects(location)
    if protocol.startswith("SASL"):
        meaning["sasl"] = (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"])
    return meaning


def meaning_of_aiokafka(config: Mapping[str, Any]) -> dict[str, Any]:
    """The same, read from aiokafka's keyword arguments (what Faust passes to its clients)."""
    protocol = config["security_protocol"]
    meaning: dict[str, Any] = {"protocol": protocol, "tls": "SSL" in protocol, "sasl": None}
    context = config.get("ssl_context")
    assert (context is not None) == meaning["tls"], config
    if context is not None:
        meaning["verifies_broker"] = context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        loaded = context.get_ca_certs()
        meaning["trusts"] = _subjects(loaded) if loaded else "system"
    if protocol.startswith("SASL"):
        meaning["sasl"] = (
            config["sasl_mechanism"],
            config["sasl_plain_username"],
            config["sasl_plain_password"],
        )
    return meaning


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_client_gets_the_same_meaning(protocol: str, pki: Pki) -> None:
    settings = _settings(protocol, pki)
    confluent = meaning_of_confluent(confluent_config(settings))
    aiokafka = meaning_of_aiokafka(aiokafka_config(settings))
    # Faust turns its credentials into aiokafka arguments itself: read them the way it does.
    faust = meaning_of_aiokafka(credentials_to_aiokafka_auth(faust_credentials(settings)))
    assert confluent == aiokafka == faust
    assert confluent["protocol"] == protocol
    assert confluent["tls"] == ("SSL" in protocol)
    if confluent["tls"]:
        assert confluent["verifies_broker"] is True
        assert confluent["trusts"] == _file_subjects(str(pki.ca))
    if protocol.startswith("SASL"):
        assert confluent["sasl"] == ("SCRAM-SHA-512", "imgdup", PASSWORD)
    else:
        assert confluent["sasl"] is None


def test_client_certificate_goes_to_librdkafka(pki: Pki) -> None:
    config = confluent_config(_settings("SSL", pki))
    assert config["ssl.certificate.location"] == str(pki.client_cert)
    assert config["ssl.key.location"] == str(pki.client_key)
    assert "ssl.certificate.location" not in confluent_config(_settings("SSL", pki, client_cert=False))


def test_without_a_ca_file_both_trust_the_system_store(pki: Pki) -> None:
    settings = _settings("SSL", pki, client_cert=False, kafka_ssl_cafile=None)
    assert meaning_of_confluent(confluent_config(settings))["trusts"] == "system"
    context = aiokafka_config(settings)["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[tuple[int, list[str]]]:
    """A loopback TLS server with the broker's certificate that requires a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.broker_cert, pki.broker_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.ca)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # accept() wakes up to see `stop`
    stop = threading.Event()
    seen: list[str] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    peer = conn.getpeercert() or {}
                    seen.append(str(dict(x[0] for x in peer.get("subject", ()))["commonName"]))
                    conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                seen.append("refused")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], seen
    stop.set()
    thread.join(5)
    listener.close()


def _handshake(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        return conn.recv(2)


def test_worker_tls_context_verifies_the_broker_and_presents_the_client_certificate(
    pki: Pki, tls_server: tuple[int, list[str]]
) -> None:
    port, seen = tls_server
    context = aiokafka_config(_settings("SASL_SSL", pki))["ssl_context"]
    assert _handshake(context, port) == b"ok"
    assert seen == ["imgdup"]  # the client certificate's CN, verified by the server
    untrusting = aiokafka_config(_settings("SSL", pki, kafka_ssl_cafile=pki.other_ca))["ssl_context"]
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(untrusting, port)


@pytest.mark.parametrize("field", ["kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"])
def test_missing_file_is_named_for_every_client(field: str, pki: Pki, tmp_path: Path) -> None:
    settings = _settings("SSL", pki, **{field: tmp_path / "nowhere.pem"})
    env_name = field.upper()
    for build in (confluent_config, aiokafka_config, faust_credentials):
        with pytest.raises(KafkaSecurityError, match=f"{env_name}.*nowhere.pem"):
            build(settings)


def test_security_env_round_trips(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the supervisor hands its child processes reads back as the same settings."""
    assert security_env(Settings(kafka_bootstrap_servers="x:1")) == {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    settings = _settings("SASL_SSL", pki)
    env = security_env(settings)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    assert confluent_config(child) == confluent_config(settings)


def test_producer_and_admin_are_built_with_the_security_config(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, config: dict[str, Any]) -> None:
            built.append(config)

        def poll(self, _timeout: float) -> int:
            return 0

        def flush(self, _timeout: float) -> int:
            return 0

        def list_topics(self, timeout: float) -> Any:
            raise RuntimeError("stop here: only the configuration is under test")

    monkeypatch.setattr(publisher, "Producer", Recorder)
    monkeypatch.setattr(topic_admin, "AdminClient", Recorder)
    security = confluent_config(_settings("SASL_SSL", pki))
    publisher.EventPublisher("127.0.0.1:1", security=security).close()
    with pytest.raises(RuntimeError, match="stop here"):
        topic_admin.ensure_topics("127.0.0.1:1", 4, security=security)
    assert len(built) == 2
    for config in built:
        assert {key: config[key] for key in security} == security
