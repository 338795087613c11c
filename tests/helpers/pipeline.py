"""A running stack's API and broker in; the pipeline waited idle and a topic's messages read back out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition


def wait_idle(api: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Poll the API's progress until no work is unfinished; the last progress it read. `headers`:
    the credentials of a stack that is not open."""
    deadline = time.monotonic() + timeout
    progress: dict[str, Any] = {}
    while time.monotonic() < deadline:
        progress = httpx.get(f"{api}/api/v1/progress", headers=headers).json()
        if progress["unfinished"] == 0:
            return progress
        time.sleep(0.3)
    raise AssertionError(f"pipeline not idle after {timeout}s: {progress}")


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    want: int | None = None,
    quiet: float | None = None,
    timeout: float = 60.0,
    key: Callable[[Message], str] | None = None,
) -> list[Message]:
    """The topic's messages from its first offset, under a fresh consumer group; stops once `want`
    have come (`want` different keys, with `key`: the topics are at-least-once, a repeat carries the
    same event_id), once none has come for `quiet` seconds, or after `timeout` seconds."""
    # assign(), not subscribe(): no group join to wait for on the local broker.
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    keys: set[str] = set()
    started = last = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if want is not None and len(messages if key is None else keys) >= want:
                break
            if quiet is not None and time.monotonic() - last >= quiet:
                break
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
                if key is not None:
                    keys.add(key(message))
                last = time.monotonic()
    finally:
        consumer.close()
    return messages
