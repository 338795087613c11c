"""Secured Kafka end to end: the whole stack over SASL_SSL (SCRAM-SHA-512 login, the broker's
certificate verified against a throwaway CA, a client certificate required), and the start-up paths
(`imgdup topics`, `imgdup worker`, `imgdup up`) ending a wrong password or an untrusted CA in one line.

The broker is the embedded tansu behind helpers.kafka_front (TLS and SCRAM), because tansu 0.6.0
itself serves no TLS and knows no SCRAM user (see that module); one test logs in to tansu's own
`--authentication` to see a real broker refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.certs import Pki, make_pki
from helpers.kafka_front import KafkaFront
from helpers.pipeline import wait_idle
from pydantic import SecretStr

from imgdup.kafka.publisher import EventPublisher, PublishError
from imgdup.kafka.security import confluent_config
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.embedded import Broker, free_port, start_broker
from imgdup.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "scram-pw-4711-do-not-log"
START_UPS = [["topics"], ["worker", "--roles", "clusterer"]]
SECURITY_NAMES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaFront]:
    """tansu on a loopback port, advertising the TLS + SCRAM front that is the only way clients reach it."""
    port = free_port()
    broker: Broker = start_broker(tmp_path_factory.mktemp("tansu"), advertise=f"127.0.0.1:{port}")
    front = KafkaFront(
        broker.bootstrap,
        port=port,
        certfile=pki.broker_cert,
        keyfile=pki.broker_key,
        client_ca=pki.ca,
        users={"imgdup": PASSWORD},
    )
    with front:
        yield front
    broker.stop()


def security(pki: Pki, **changes: str) -> dict[str, str]:
    """The environment of a client of the secured broker; `changes` spoils one setting."""
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "imgdup",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "KAFKA_SSL_CAFILE": str(pki.ca),
        "KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "KAFKA_SSL_KEYFILE": str(pki.client_key),
    }
    return {**env, **changes}


def _run(argv: list[str], env: Mapping[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in SECURITY_NAMES and not k.startswith("IMGDUP_KAFKA_") and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "imgdup", *argv],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 1 and exactly one `error:` line, no traceback, no password."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert PASSWORD not in output and "wrong-password" not in output
    return errors[0]


def test_pipeline_runs_over_sasl_ssl(
    secured: KafkaFront,
    pki: Pki,
    make_stack: Any,
    pg_dsn: str,
    truncate_db: Any,
    image_server: LoopbackImageServer,
    tmp_path: Path,
) -> None:
    """The supervisor creates topics and the API publishes (confluent-kafka), the worker consumes and
    publishes (Faust/aiokafka): every one of them logs in over verified TLS, and an ad's repost is found."""
    truncate_db()
    settings: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "imgdup",
        "kafka_sasl_password": SecretStr(PASSWORD),
        "kafka_ssl_cafile": pki.ca,
        "kafka_ssl_certfile": pki.client_cert,
        "kafka_ssl_keyfile": pki.client_key,
    }
    stack = make_stack(tmp_path / "stack", pg_dsn, secured.address, extra_settings=settings)
    try:
        stack.start()
        for ad_id, name in ((7101, "coffee.jpg"), (7102, "coffee_flip.jpg")):
            body = {"ad_id": ad_id, "source": "olx.pt", "images": [image_server.url_for(name)]}
            response = httpx.post(f"{stack.api_url}/api/v1/image/ingest", json=body, timeout=30)
            assert response.status_code == 202, response.text
        progress = wait_idle(stack.api_url)
        assert progress["events_dead"] == 0, progress
        duplicates = httpx.get(f"{stack.api_url}/api/v1/duplicates/7102").json()["duplicates"]
        assert [d["ad_id"] for d in duplicates] == [7101]
    finally:
        stack.stop()
    clients = {client for client, user in secured.logins if user == "imgdup"}
    assert "imgdup-api" in clients  # the API's EventPublisher (confluent-kafka)
    assert "imgdup-preflight" in clients  # the worker's connection check (aiokafka)
    assert any(client.startswith("faust") for client in clients), clients  # the worker's own clients
    assert "rdkafka" in clients  # the topic admin client (librdkafka's default client id)


@pytest.mark.parametrize("command", START_UPS, ids=["topics", "worker"])
def test_wrong_password_fails_in_one_line(secured: KafkaFront, pki: Pki, command: list[str]) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": secured.address, **security(pki, KAFKA_SASL_PASSWORD="wrong-password")}
    line = _error_line(_run(command, env))
    assert "login refused" in line and "KAFKA_SASL_PASSWORD" in line, line


@pytest.mark.parametrize("command", START_UPS, ids=["topics", "worker"])
def test_untrusted_broker_certificate_fails_in_one_line(
    secured: KafkaFront, pki: Pki, command: list[str]
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": secured.address, **security(pki, KAFKA_SSL_CAFILE=str(pki.other_ca))}
    line = _error_line(_run(command, env))
    assert "TLS handshake failed" in line and "certificate verify failed" in line, line


def test_up_with_a_wrong_password_fails_in_one_line(
    secured: KafkaFront, pki: Pki, pg_dsn: str, tmp_path: Path
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": secured.address,
        "DATABASE_URL": pg_dsn,
        "IMGDUP_API_PORT": str(free_port()),
        **security(pki, KAFKA_SASL_PASSWORD="wrong-password"),
    }
    line = _error_line(_run(["up", "--data-dir", str(tmp_path / "state")], env))
    assert "login refused" in line, line


def test_tansu_refuses_a_login_it_does_not_know(tmp_path: Path) -> None:
    """tansu's own `--authentication`, as a real broker answers a SCRAM login it cannot verify."""
    broker = start_broker(tmp_path / "tansu", authentication=True)
    try:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "imgdup",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
        line = _error_line(_run(["topics"], env))
        assert "login refused" in line and "unknown-user" in line, line
    finally:
        broker.stop()


async def test_api_publisher_reports_a_refused_login_in_its_error_and_once_in_the_log(
    secured: KafkaFront, pki: Pki, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The API's producer (librdkafka) with a wrong password: ingest's 503 says why, and the log says
    it once, not a line per reconnect (librdkafka's own logging printed one every ~50 ms)."""
    wrong = security(pki, KAFKA_SASL_PASSWORD="wrong-password")
    settings = Settings(kafka_bootstrap_servers=secured.address, **{k.lower(): v for k, v in wrong.items()})
    publisher = EventPublisher(secured.address, security=confluent_config(settings))
    try:
        for _ in range(2):
            with pytest.raises(PublishError, match=r"login refused.*Invalid username or password"):
                await publisher.publish("ad.images.created", key=b"1", value=b"{}")
    finally:
        publisher.close(1)
    assert "SASL authentication error" not in capfd.readouterr().err
    logged = [r.getMessage() for r in caplog.records if "login refused" in r.getMessage()]
    assert len(logged) == 1, logged


@pytest.mark.parametrize("command", [*START_UPS, ["api"]], ids=["topics", "worker", "api"])
def test_missing_ca_file_fails_in_one_line(pki: Pki, command: list[str], tmp_path: Path) -> None:
    """Checked before any connection: no broker is needed to see it."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "IMGDUP_API_PORT": str(free_port()),
        **security(pki, KAFKA_SSL_CAFILE=str(tmp_path / "missing-ca.pem")),
    }
    line = _error_line(_run(command, env, timeout=60))
    assert "KAFKA_SSL_CAFILE" in line and "missing-ca.pem: no such file" in line, line
