"""imgdup.store.events.claim_stale_accepted: which accepted events the images workers re-drive, how often."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from pydantic import HttpUrl

from imgdup.store.db import open_pool
from imgdup.store.events import accept_event, claim_stale_accepted
from schemas import AdImagesCreatedV1


def _event(n: int) -> AdImagesCreatedV1:
    return AdImagesCreatedV1(
        schema_version=1,
        event_id=f"e{n}",
        ad_id=n,
        source="olx.pt",
        images=[HttpUrl(f"https://cdn.example.com/{n}.jpg")],
        created_at=datetime.now(UTC),
    )


async def test_only_stale_accepted_events_are_claimed_once_per_period(clean_db: str) -> None:
    pool = await open_pool(clean_db, max_size=2)
    try:
        for n in (1, 2, 3, 4):
            assert await accept_event(pool, _event(n))
        with psycopg.connect(clean_db, autocommit=True) as conn:
            # 1: stale; 2: stale but a worker began it; 3: stale replay; 4: accepted just now.
            conn.execute("UPDATE ingest_events SET updated_at = now() - interval '2 minutes' WHERE ad_id < 4")
            conn.execute("UPDATE ingest_events SET status = 'processing' WHERE ad_id = 2")
            conn.execute("UPDATE ingest_events SET replay = true WHERE ad_id = 3")

        claimed = await claim_stale_accepted(pool, older_than_s=60)
        assert sorted((AdImagesCreatedV1.model_validate_json(p).event_id, r) for p, r in claimed) == [
            ("e1", False),
            ("e3", True),
        ]
        # Claimed for another period: a second worker (or the next round) does not publish them again.
        assert await claim_stale_accepted(pool, older_than_s=60) == []
    finally:
        await pool.close()
