"""Topic registry -> topics created on the broker with their partition counts (idempotent)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from imgdup.kafka.security import LOGIN_HINT, TLS_HINT, KafkaSecurityError
from schemas.topics import ALL_TOPICS, partitions_of

log = logging.getLogger(__name__)

# A broker that refuses the TLS handshake or the login refuses it again: no point waiting.
REFUSALS = {
    KafkaError._SSL: ("TLS handshake failed", TLS_HINT),
    KafkaError._AUTHENTICATION: ("login refused", LOGIN_HINT),
}


def ensure_topics(
    bootstrap: str,
    default_partitions: int,
    *,
    security: Mapping[str, str],
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are.

    `security` is `imgdup.kafka.security.confluent_config(settings)`. Raises KafkaSecurityError when
    the broker refuses the TLS handshake or the login, RuntimeError when it stays unreachable."""
    errors: list[KafkaError] = []
    # log_level 0: an unreachable broker is reported once by us, not by librdkafka every 50 ms;
    # its reasons arrive through error_cb instead (served by poll).
    config: dict[str, Any] = {
        **security,
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 5000,
        "log_level": 0,
        "error_cb": errors.append,
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException as exc:
            admin.poll(0)
            refused = [e for e in errors if e.code() in REFUSALS]
            if refused:
                what, hint = REFUSALS[refused[-1].code()]
                protocol = security.get("security.protocol", "PLAINTEXT")
                raise KafkaSecurityError(
                    f"Kafka broker at {bootstrap}: {what} ({protocol}): {refused[-1].str()}; {hint}"
                ) from exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka broker at {bootstrap} is unreachable: {exc}") from exc
            time.sleep(0.5)
    wanted = [
        NewTopic(spec.name, partitions_of(spec, default_partitions), replication_factor)
        for spec in ALL_TOPICS
        if spec.name not in existing
    ]
    created: list[str] = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=10).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return created
