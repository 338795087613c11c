"""An event the API accepted but never published (it died between the two steps) is re-driven by a
running images worker, without `imgdup up` restarting anything."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg
import pytest
from pydantic import HttpUrl

from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.supervisor import Stack
from imgdup.store.db import open_pool
from imgdup.store.events import accept_event
from schemas import AdImagesCreatedV1

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDRIVE_AFTER_S = 2.0


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {
        "IMGDUP_EMBEDDER": "sscd_distilled",
        "IMGDUP_ALLOW_UNCALIBRATED_EMBEDDER": "true",
        "IMGDUP_REDRIVE_AFTER_S": str(REDRIVE_AFTER_S),
    }


def _status(dsn: str, event_id: str) -> str | None:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        row = conn.execute("SELECT status FROM ingest_events WHERE event_id = %s", (event_id,)).fetchone()
    return None if row is None else str(row[0])


async def _accept_only(dsn: str, event: AdImagesCreatedV1) -> None:
    """What the API does before it publishes; the publish never happens (the API was killed)."""
    pool = await open_pool(dsn, max_size=1)
    try:
        assert await accept_event(pool, event)
    finally:
        await pool.close()


def test_accepted_but_unpublished_event_is_processed(
    stack: Stack, pg_dsn: str, image_server: LoopbackImageServer
) -> None:
    # Accepted after the stack started: `imgdup up`'s own re-drive at start-up has already run.
    event = AdImagesCreatedV1(
        schema_version=1,
        event_id="api-died-before-publishing",
        ad_id=4242,
        source="olx.pt",
        images=[HttpUrl(image_server.url_for("coffee.jpg")), HttpUrl(image_server.url_for("chelsea.jpg"))],
        created_at=datetime.now(UTC),
    )
    asyncio.run(_accept_only(pg_dsn, event))
    assert _status(pg_dsn, event.event_id) == "accepted"

    deadline = time.monotonic() + 90  # the re-drive period, a worker's first model load, processing
    status = None
    while time.monotonic() < deadline:
        status = _status(pg_dsn, event.event_id)
        if status == "indexed":
            break
        time.sleep(0.5)
    assert status == "indexed", f"still {status!r}; see {stack.settings.data_dir}/worker.log"
    with psycopg.connect(pg_dsn) as conn:
        images = conn.execute("SELECT status FROM images WHERE ad_id = 4242 ORDER BY position").fetchall()
    assert images == [("indexed",), ("indexed",)]
