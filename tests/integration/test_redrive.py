"""An event the API accepted but never published (it died between the two steps) is re-driven by a
running images worker, and a moderator's verdict the API stored but never handed to the clusterer is
applied by the running clusterer, without `imgdup up` restarting anything."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg
import pytest
from pydantic import HttpUrl

from imgdup import ids
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.supervisor import Stack
from imgdup.store import moderation, pairs
from imgdup.store.db import open_pool
from imgdup.store.events import accept_event, begin_event
from schemas import AdImagesCreatedV1, EvidenceV1, VersionsV1

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDRIVE_AFTER_S = 2.0


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {
        "IMGDUP_EMBEDDER": "sscd_distilled",
        # Pinned, not a default: fused-v3 on the distilled vectors (the cheaper embedder), the verdicts
        # this test was written against (sscd_distilled's default is fused-v3-distilled, sscd's fused-v26).
        "IMGDUP_VERIFIER_VERSION": "fused-v3",
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


async def _verdict_never_handed_over(dsn: str) -> str:
    """A pair the verifier rejected, then a moderator's `confirmed` stored by the API whose publish
    failed (its 503): nothing ever tells the clusterer. The pair id."""
    pool = await open_pool(dsn, max_size=1)
    try:
        sides = []
        for ad_id in (4301, 4302):
            url = f"https://cdn.example/{ad_id}.jpg"
            event = AdImagesCreatedV1(
                schema_version=1,
                event_id=f"evt-{ad_id}",
                ad_id=ad_id,
                source="olx.pt",
                images=[HttpUrl(url)],
                created_at=datetime.now(UTC),
            )
            await begin_event(pool, event)
            sides.append((ids.image_id(ad_id, url), ad_id))
        (a, ad_a), (b, ad_b) = sorted(sides)
        pair = ids.pair_id(a, b)
        versions = VersionsV1(embedding_model="m", verifier="v")
        await pairs.add_candidates(
            pool, [pairs.CandidateRow(pair, a, ad_a, b, ad_b, 0.9, False)], verifier_version=versions.verifier
        )
        evidence = EvidenceV1(
            phash_distance=20, phash_mirrored=False, embedding_cosine=0.9, sift_inliers=3,
            sift_mirrored=False, ssim=0.2,
        )  # fmt: skip
        assert await pairs.save_verdict(pool, pairs.VerdictRow(pair, False, 0.1, evidence, versions)) is None
        assert await moderation.record_verdict(pool, pair, verdict="confirmed", moderator="ana", note=None)
        return pair
    finally:
        await pool.close()


def test_a_verdict_never_handed_to_the_clusterer_is_applied_by_the_clusterer_itself(
    stack: Stack, pg_dsn: str
) -> None:
    pair = asyncio.run(_verdict_never_handed_over(pg_dsn))
    deadline = time.monotonic() + 60  # 1.5 re-drive periods, the clusterer's step, its publish
    row = None
    while time.monotonic() < deadline:
        with psycopg.connect(pg_dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT d.status, d.clustered_at IS NOT NULL, (SELECT count(*) FROM cluster_changes c"
                " WHERE c.pair_id = d.pair_id AND c.published_at IS NULL)"
                " FROM duplicates d WHERE d.pair_id = %s",
                (pair,),
            ).fetchone()
        if row == ("clustered", True, 0):
            break
        time.sleep(0.5)
    assert row == ("clustered", True, 0), f"{row!r}; see {stack.settings.data_dir}/worker.log"
    with psycopg.connect(pg_dsn) as conn:
        published = conn.execute(
            "SELECT type FROM cluster_changes WHERE pair_id = %s AND published_at IS NOT NULL", (pair,)
        ).fetchall()
    assert published == [("pair_clustered",)]
