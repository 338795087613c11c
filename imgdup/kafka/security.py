"""Settings' Kafka security group -> each client's configuration with one meaning: librdkafka's (the
producer and admin client), aiokafka's and Faust's credentials (the workers), the child environment.

One meaning for every client: SSL and SASL_SSL encrypt and verify the broker's certificate chain and
host name, against KAFKA_SSL_CAFILE or else the system's CAs, and present the client certificate
when one is set; SASL_PLAINTEXT and SASL_SSL log in with the mechanism, user name and password."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgdup.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

# Settings field -> the environment name operators set (bare; the IMGDUP_ form is read too).
ENV_NAMES = {
    "kafka_security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "kafka_sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "kafka_sasl_username": "KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "KAFKA_SASL_PASSWORD",
    "kafka_ssl_cafile": "KAFKA_SSL_CAFILE",
    "kafka_ssl_certfile": "KAFKA_SSL_CERTFILE",
    "kafka_ssl_keyfile": "KAFKA_SSL_KEYFILE",
}


# What to check when the broker refuses the login or the TLS handshake (every client's message).
LOGIN_HINT = "check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
TLS_HINT = "check KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_CAFILE and the broker's certificate"


class KafkaSecurityError(RuntimeError):
    """The Kafka security settings cannot work, or the broker refused them; the message says which."""


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def _file(settings: Settings, field: str) -> str | None:
    """The path of a TLS file setting, checked readable here so that every client reports it alike."""
    path: Path | None = getattr(settings, field)
    if path is None:
        return None
    if not path.is_file():
        raise KafkaSecurityError(f"{ENV_NAMES[field]}={path}: no such file")
    try:
        path.open("rb").close()
    except OSError as exc:
        raise KafkaSecurityError(f"{ENV_NAMES[field]}={path}: cannot be read ({exc.strerror})") from exc
    return str(path)


def _login(settings: Settings) -> tuple[str, str, str]:
    # Settings guarantee all three for SASL protocols (Settings._kafka_security_consistent).
    assert settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password
    return (
        settings.kafka_sasl_mechanism,
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
    )


def confluent_config(settings: Settings) -> dict[str, str]:
    """librdkafka properties for the EventPublisher's producer and the topic admin client."""
    config: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        # "probe": the system's CA bundle, which Python's default context loads too; librdkafka's
        # own default would look in the paths its bundled OpenSSL was built with.
        config["ssl.ca.location"] = _file(settings, "kafka_ssl_cafile") or "probe"
        config["ssl.endpoint.identification.algorithm"] = "https"  # host name checked, as in Python
        config["enable.ssl.certificate.verification"] = "true"
        certfile = _file(settings, "kafka_ssl_certfile")
        if certfile is not None:
            config["ssl.certificate.location"] = certfile
            config["ssl.key.location"] = _file(settings, "kafka_ssl_keyfile") or ""
    if uses_sasl(settings):
        mechanism, username, password = _login(settings)
        config.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the workers' clients; None when the protocol has no TLS."""
    if not uses_tls(settings):
        return None
    cafile = _file(settings, "kafka_ssl_cafile")
    certfile = _file(settings, "kafka_ssl_certfile")
    keyfile = _file(settings, "kafka_ssl_keyfile")
    try:
        # Verifies the chain and the host name (CERT_REQUIRED, check_hostname); with a CA file it
        # trusts that file only, like librdkafka's ssl.ca.location.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if certfile is not None:
            context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise KafkaSecurityError(
            f"KAFKA_SSL_CAFILE/CERTFILE/KEYFILE: not usable PEM files ({exc.reason or exc})"
        ) from exc
    return context


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """aiokafka's keyword arguments, in the shape Faust makes from `faust_credentials` (the worker's
    connection check opens a connection with them)."""
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if uses_sasl(settings):
        mechanism, username, password = _login(settings)
        config.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
        config.setdefault("ssl_context", None)
    return config


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials`: its consumers and producers pass them on to aiokafka."""
    # Imported here: the API and the command line use this module without loading Faust.
    from faust.auth import SASLCredentials, SSLCredentials

    context = ssl_context(settings)
    if uses_sasl(settings):
        mechanism, username, password = _login(settings)
        # With a context Faust's SASL credentials mean SASL_SSL, without one SASL_PLAINTEXT.
        return SASLCredentials(username=username, password=password, ssl_context=context, mechanism=mechanism)
    if context is not None:
        return SSLCredentials(context)
    return None


def security_env(settings: Settings) -> dict[str, str]:
    """The group as environment variables: the supervisor's child processes read the same settings."""
    env: dict[str, str] = {}
    for field, name in ENV_NAMES.items():
        value = getattr(settings, field)
        if value is None:
            continue
        env[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return env


def describe(settings: Settings) -> str:
    """The group in words for error messages, without the password."""
    parts: list[str] = [settings.kafka_security_protocol]
    if uses_sasl(settings):
        parts.append(f"{settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}")
    if uses_tls(settings):
        parts.append(f"CA {settings.kafka_ssl_cafile or 'from the system'}")
    return ", ".join(parts)
