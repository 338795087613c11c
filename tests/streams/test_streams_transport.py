"""The Faust app's Kafka consumer takes its fetch wait from settings (streams.transport)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from imgdup.settings import Settings
from streams.app import create_app
from streams.transport import Consumer, Transport


async def test_worker_consumer_waits_at_most_the_configured_fetch_wait() -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", consumer_fetch_max_wait_ms=75))
    assert isinstance(app.transport, Transport)
    consumer = app.transport.create_consumer(
        callback=lambda *_: None,
        on_partitions_revoked=lambda *_: None,
        on_partitions_assigned=lambda *_: None,
    )
    assert isinstance(consumer, Consumer)
    thread = consumer._new_consumer_thread()
    kafka_consumer = thread._create_consumer(asyncio.get_running_loop())
    try:
        assert kafka_consumer._fetch_max_wait_ms == 75
    finally:
        await kafka_consumer.stop()  # never started: closes the client it built


def test_default_fetch_wait_is_short() -> None:
    assert Settings().consumer_fetch_max_wait_ms <= 200


def test_faust_keeps_its_folder_under_the_data_dir(tmp_path: Path) -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", data_dir=tmp_path))
    assert Path(app.conf.datadir).resolve().is_relative_to(tmp_path.resolve())
