"""A failed Kafka message + reason -> a DeadLetterV1 record on the dead-letter topic (errors are data)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust

from imgdup import metrics
from schemas import DeadLetterV1
from schemas.wire import encode

log = logging.getLogger(__name__)
MAX_ORIGINAL_BYTES = 64 * 1024


def _text(value: bytes | str | None, limit: int = MAX_ORIGINAL_BYTES) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:limit]
    return value[:limit].decode("utf-8", errors="replace")


async def dead_letter(
    topic: faust.TopicT,
    message: Any,
    *,
    reason: str,
    error: BaseException | None = None,
    detail: str | None = None,
    event_id: str | None = None,
    ad_id: int | None = None,
    image_url: str | None = None,
) -> DeadLetterV1:
    """Publish the message with the reason; waits until the broker has it."""
    record = DeadLetterV1(
        reason=reason,
        error_class=type(error).__name__ if error is not None else "Rejected",
        message=(detail or (str(error) if error is not None else reason))[:4000],
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        event_id=event_id,
        ad_id=ad_id,
        image_url=image_url,
        original_key=_text(message.key, 1024),
        original_value=_text(message.value),
        failed_at=datetime.now(UTC),
    )
    headers = {
        "imgdup-reason": reason.encode(),
        "imgdup-error-class": record.error_class.encode(),
        "imgdup-source-topic": message.topic.encode(),
        "imgdup-source-partition": str(message.partition).encode(),
        "imgdup-source-offset": str(message.offset).encode(),
        "imgdup-attempt": b"1",
    }
    fut = await topic.send(key=message.key, value=encode(record), headers=headers)
    await fut
    metrics.DEAD_LETTERS.labels(reason, message.topic).inc()
    log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
    return record
