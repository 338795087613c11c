"""An ad id (and URL) -> the one-image `ad.images.created` event tests feed the steps, and that ad
begun in Postgres as a (image_id, ad_id) side."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.store.events import begin_event
from schemas import AdImagesCreatedV1

Side = tuple[str, int]


def one_image_event(ad_id: int, url: str) -> AdImagesCreatedV1:
    """The portal's event for an ad with the single image `url` (a fixed creation time)."""
    return AdImagesCreatedV1(
        schema_version=1,
        event_id=f"evt-{ad_id}",
        ad_id=ad_id,
        source="olx.pt",
        images=[url],
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def begun_image(pool: AsyncConnectionPool, ad_id: int) -> Side:
    """An ad with one image recorded as accepted (begin_event): its image id and ad id."""
    url = f"https://cdn.example/{ad_id}.jpg"
    await begin_event(pool, one_image_event(ad_id, url))
    return ids.image_id(ad_id, url), ad_id
