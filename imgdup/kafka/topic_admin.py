"""Topic registry -> topics created on the broker with their partition counts (idempotent)."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.topics import ALL_TOPICS, partitions_of

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str, default_partitions: int, *, replication_factor: int = 1, timeout: float = 30.0
) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    # log_level 0: an unreachable broker is reported once by us, not by librdkafka every 50 ms.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "log_level": 0})
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException as exc:
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
