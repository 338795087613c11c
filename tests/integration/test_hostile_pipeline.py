"""Hostile and broken input through the real pipeline: each case ends as a dead letter with a
machine-readable reason (or is indexed when it is a valid if unusual image), and the next event
is processed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from pydantic import SecretStr

from imgdup.ops.bad_inputs import IMAGE_CASES, HostileServer, event_cases
from imgdup.ops.embedded import free_port
from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings
from schemas import DeadLetterV1, topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    pg_dsn: str, kafka: str, truncate_db: Callable[[], None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    truncate_db()
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("hostile-stack")),
        database_url=SecretStr(pg_dsn),
        kafka_bootstrap_servers=kafka,
        api_port=free_port(),
    )
    running = Stack(
        settings,
        say=lambda _line: None,
        extra_env={
            "IMGDUP_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "IMGDUP_API_PORT": str(settings.api_port),
            "IMGDUP_APP_ID": f"imgdup-hostile-{uuid.uuid4().hex[:8]}",
            "IMGDUP_DOWNLOAD_TIMEOUT_S": "2",
            "IMGDUP_DOWNLOAD_MAX_BYTES": str(2 * 1024 * 1024),
            "IMGDUP_EMBEDDER": "sscd_distilled",
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _event(event_id: str, ad_id: int, urls: list[str]) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "ad_id": ad_id,
            "source": "olx.pt",
            "category": None,
            "seller_id": None,
            "images": urls,
            "created_at": "2026-11-26T10:00:00Z",
        }
    ).encode()


def _status(dsn: str, event_id: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM ingest_events WHERE event_id = %s", (event_id,)).fetchone()
    return None if row is None else str(row[0])


def _dead_letters(kafka: str, want: int, timeout: float = 60.0) -> list[DeadLetterV1]:
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    partitions = (
        consumer.list_topics(topics.DEAD_LETTERS.name, timeout=10).topics[topics.DEAD_LETTERS.name].partitions
    )
    consumer.assign([TopicPartition(topics.DEAD_LETTERS.name, p, OFFSET_BEGINNING) for p in partitions])
    records: list[DeadLetterV1] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(DeadLetterV1.model_validate_json(message.value()))
    finally:
        consumer.close()
    return records


def test_every_bad_input_is_dead_lettered_with_its_reason_and_the_next_event_is_processed(
    stack: Stack, hostile: HostileServer, pg_dsn: str
) -> None:
    producer = Producer({"bootstrap.servers": stack.kafka, "partitioner": "murmur2_random"})
    key = b"4242"
    bad_events = event_cases(hostile.url("/ok.jpg"))
    for case in bad_events:
        producer.produce(topics.AD_IMAGES_CREATED.name, key=key, value=case.value)
    image_urls = [hostile.url(case.path) for case in IMAGE_CASES]
    producer.produce(topics.AD_IMAGES_CREATED.name, key=key, value=_event("hostile-images", 4242, image_urls))
    producer.produce(
        topics.AD_IMAGES_CREATED.name,
        key=key,
        value=_event("after-hostile", 4242, [hostile.url("/ok.jpg?next")]),
    )
    assert producer.flush(10) == 0

    # The agent runs two events at a time, so the one behind may finish first: wait for both.
    deadline = time.monotonic() + 180
    for event_id in ("after-hostile", "hostile-images"):
        while _status(pg_dsn, event_id) != "indexed":
            assert time.monotonic() < deadline, f"{event_id} was not processed"
            time.sleep(0.3)

    with psycopg.connect(pg_dsn) as conn:
        rows = dict(
            conn.execute(
                "SELECT url, coalesce(error_reason, status) FROM images WHERE ad_id = 4242"
            ).fetchall()
        )
    for case in IMAGE_CASES:
        assert rows[hostile.url(case.path)] == case.expected, case.description

    failing = [case for case in IMAGE_CASES if case.expected != "indexed"]
    letters = _dead_letters(stack.kafka, want=len(bad_events) + len(failing))
    by_url = {r.image_url: r for r in letters if r.image_url}
    for case in failing:
        record = by_url[hostile.url(case.path)]
        assert record.reason == case.expected
        assert record.event_id == "hostile-images" and record.ad_id == 4242
        assert record.source_topic == topics.AD_IMAGES_CREATED.name and record.source_offset is not None
    event_level = sorted(r.reason for r in letters if r.image_url is None)
    assert event_level == sorted(case.expected for case in bad_events)
