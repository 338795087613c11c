"""Consumes imgdup.settings.Settings: environment names, CSV lists and secret handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from imgdup.settings import ALL_ROLES, DEFAULT_VECTOR_STORE, Settings

ENDPOINTS = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka_bootstrap_servers",
    "DATABASE_URL": "database_url",
    "QDRANT_URL": "qdrant_url",
}
KAFKA_SECURITY = {
    "KAFKA_SECURITY_PROTOCOL": "kafka_security_protocol",
    "KAFKA_SASL_MECHANISM": "kafka_sasl_mechanism",
    "KAFKA_SASL_USERNAME": "kafka_sasl_username",
    "KAFKA_SASL_PASSWORD": "kafka_sasl_password",
    "KAFKA_SSL_CAFILE": "kafka_ssl_cafile",
    "KAFKA_SSL_CERTFILE": "kafka_ssl_certfile",
    "KAFKA_SSL_KEYFILE": "kafka_ssl_keyfile",
}
PASSWORD = "s3cr3t-pw-do-not-log"
DSN = f"postgresql://imgdup:{PASSWORD}@db.internal:5432/imgdup"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Settings read the process environment: start every test without any imgdup variable."""
    for name in list(os.environ):
        if (
            name.startswith("IMGDUP_")
            or name in ENDPOINTS
            or name in KAFKA_SECURITY
            or name == "QDRANT_API_KEY"
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env or secrets in the working directory


def _value(settings: Settings, attribute: str) -> str | None:
    value = getattr(settings, attribute)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_endpoints_default_to_none() -> None:
    settings = Settings()
    for attribute in ENDPOINTS.values():
        assert getattr(settings, attribute) is None
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        settings.database_dsn()
    with pytest.raises(RuntimeError, match="KAFKA_BOOTSTRAP_SERVERS"):
        settings.bootstrap_servers()


@pytest.mark.parametrize("prefix", ["", "IMGDUP_"], ids=["bare", "prefixed"])
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_endpoint_names(monkeypatch: pytest.MonkeyPatch, name: str, prefix: str) -> None:
    value = "postgresql://u:p@h/db" if name == "DATABASE_URL" else "host-a:9092,host-b:9092"
    monkeypatch.setenv(prefix + name, value)
    settings = Settings()
    assert _value(settings, ENDPOINTS[name]) == value
    others = [a for n, a in ENDPOINTS.items() if n != name]
    assert all(getattr(settings, a) is None for a in others)


def test_endpoint_accessors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("IMGDUP_DATABASE_URL", DSN)
    settings = Settings()
    assert settings.bootstrap_servers() == "k1:9092,k2:9092"
    assert settings.database_dsn() == DSN


def test_worker_roles_default_to_all() -> None:
    assert Settings().worker_roles == list(ALL_ROLES)


@pytest.mark.parametrize("raw", ["images,verifier", " images , verifier ,", "images,,verifier"])
def test_worker_roles_csv(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("IMGDUP_WORKER_ROLES", raw)
    assert Settings().worker_roles == ["images", "verifier"]


def test_single_worker_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_WORKER_ROLES", "clusterer")
    assert Settings().worker_roles == ["clusterer"]


def test_unknown_worker_role_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_WORKER_ROLES", "images,bogus")
    with pytest.raises(ValidationError, match="worker_roles"):
        Settings()


def test_allow_private_networks_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8, 10.0.0.0/8,::1/128")
    assert Settings().allow_private_networks == ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]


def test_allow_private_networks_default_empty() -> None:
    assert Settings().allow_private_networks == []


def test_database_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DSN)
    monkeypatch.setenv("IMGDUP_API_TOKEN", "token-do-not-log")
    settings = Settings()
    assert isinstance(settings.database_url, SecretStr)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert PASSWORD not in shown
        assert "token-do-not-log" not in shown
    assert settings.database_url.get_secret_value() == DSN


def test_prefixed_plain_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_TOPIC_PARTITIONS", "8")
    monkeypatch.setenv("IMGDUP_DOWNLOAD_TIMEOUT_S", "2.5")
    settings = Settings()
    assert settings.topic_partitions == 8
    assert settings.download_timeout_s == 2.5


def test_out_of_range_setting_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_api_credentials_from_the_environment_a_secret_file_and_their_own_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().api_is_open()
    monkeypatch.setenv("IMGDUP_API_CREDENTIALS", "a:viewer:sha256:00")
    assert Settings().api_credentials_text() == "a:viewer:sha256:00"
    monkeypatch.delenv("IMGDUP_API_CREDENTIALS")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "imgdup_api_credentials").write_text("b:metrics:sha256:11\n")
    from_secret = Settings(_secrets_dir=secrets)
    assert from_secret.api_credentials_text() == "b:metrics:sha256:11"
    assert not from_secret.api_is_open()
    (tmp_path / "creds.txt").write_text("c:ingest:sha256:22\n")
    monkeypatch.setenv("IMGDUP_API_CREDENTIALS_FILE", str(tmp_path / "creds.txt"))
    both = Settings(_secrets_dir=secrets)
    assert both.api_credentials_text().split() == ["b:metrics:sha256:11", "c:ingest:sha256:22"]
    assert "sha256:11" not in repr(both)


def test_a_blank_token_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGDUP_API_TOKEN", "")
    assert Settings().api_token is None and Settings().api_is_open()


def test_trusted_proxies_csv_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("IMGDUP_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1 ,fd00::/8")
    settings = Settings()
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.0.2.1", "fd00::/8"]
    assert not settings.api_is_open()
    monkeypatch.setenv("IMGDUP_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network")
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings()


@pytest.mark.parametrize("name", ["IMGDUP_API_AUTH_FAILURES", "IMGDUP_API_AUTH_FAILURE_WINDOW_S"])
def test_auth_failure_throttle_must_be_positive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ValidationError):
        Settings()


def test_kafka_security_defaults_to_plaintext() -> None:
    settings = Settings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert all(
        getattr(settings, a) is None for n, a in KAFKA_SECURITY.items() if n != "KAFKA_SECURITY_PROTOCOL"
    )


@pytest.mark.parametrize("prefix", ["", "IMGDUP_"], ids=["bare", "prefixed"])
def test_kafka_security_names(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Read like KAFKA_BOOTSTRAP_SERVERS: the bare name or the IMGDUP_ one."""
    values = {
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",  # any case, as Kafka's own clients accept it
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "imgdup",
        "KAFKA_SASL_PASSWORD": "kafka-pw-do-not-log",
        "KAFKA_SSL_CAFILE": "/etc/imgdup/kafka/ca.crt",
        "KAFKA_SSL_CERTFILE": "/etc/imgdup/kafka/tls.crt",
        "KAFKA_SSL_KEYFILE": "/etc/imgdup/kafka/tls.key",
    }
    for name, value in values.items():
        monkeypatch.setenv(prefix + name, value)
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_sasl_username == "imgdup"
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-pw-do-not-log"
    assert str(settings.kafka_ssl_cafile) == "/etc/imgdup/kafka/ca.crt"
    assert str(settings.kafka_ssl_certfile) == "/etc/imgdup/kafka/tls.crt"
    assert str(settings.kafka_ssl_keyfile) == "/etc/imgdup/kafka/tls.key"
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert "kafka-pw-do-not-log" not in shown


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
            },
            "needs KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SSL_CAFILE": "/ca.pem"}, "SASL_PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"}, "KAFKA_SSL_KEYFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL\n  Input should be 'PLAINTEXT'"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "KAFKA_SASL_MECHANISM\n  Input should be 'PLAIN'",
        ),
    ],
    ids=[
        "sasl-without-login",
        "sasl-without-password",
        "login-without-sasl",
        "files-without-tls",
        "cert-without-key",
        "unknown-protocol",
        "unsupported-mechanism",
    ],
)
def test_inconsistent_kafka_security_is_rejected(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    """A half-configured group fails at start-up, never silently falls back to plaintext."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_the_vector_store_default_keeps_an_existing_edge_folder(tmp_path: Path) -> None:
    """Unset, the vector store is the measured default; a data dir that already holds a qdrant-edge
    shard (the default before) keeps it, so its indexed images stay searchable."""
    fresh = Settings(data_dir=tmp_path / "fresh")
    assert fresh.vector_index is None
    assert fresh.vector_store_kind() == DEFAULT_VECTOR_STORE
    old = Settings(data_dir=tmp_path / "old")
    (old.vector_dir / "sscd-v1-0123456789ab").mkdir(parents=True)
    (old.vector_dir / "sscd-v1-0123456789ab" / "edge_config.json").write_text("{}")
    assert old.vector_store_kind() == "edge"
    assert not old.vector_store_is_shared()
    chosen = Settings(data_dir=tmp_path / "old", vector_index="pgvector")
    assert chosen.vector_store_kind() == "pgvector" and chosen.vector_store_is_shared()
