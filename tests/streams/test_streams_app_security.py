"""The Faust app's own Kafka clients (the worker's consumer and producer) carry the settings' Kafka
security: the aiokafka objects Faust builds are read back, not the arguments we hand it."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from helpers.certs import Pki, make_pki
from pydantic import SecretStr

from imgdup.settings import Settings
from streams.app import create_app


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_worker_consumer_and_producer_use_sasl_over_tls(pki: Pki) -> None:
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="imgdup",
        kafka_sasl_password=SecretStr("pw-4711"),
        kafka_ssl_cafile=pki.ca,
    )
    app = create_app(settings)
    consumer = app.transport.create_consumer(
        callback=lambda *_: None,
        on_partitions_revoked=lambda *_: None,
        on_partitions_assigned=lambda *_: None,
    )
    kafka_consumer = consumer._new_consumer_thread()._create_consumer(asyncio.get_running_loop())
    producer = app.producer._new_producer()
    try:
        for client in (kafka_consumer._client, producer.client):
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "SCRAM-SHA-256"
            assert (client._sasl_plain_username, client._sasl_plain_password) == ("imgdup", "pw-4711")
            context = client._ssl_context
            assert isinstance(context, ssl.SSLContext)
            assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
            assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "imgdup test CA"),),)]
    finally:
        await kafka_consumer.stop()
        await producer.stop()


def test_plaintext_app_has_no_credentials() -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    assert app.conf.broker_credentials is None
