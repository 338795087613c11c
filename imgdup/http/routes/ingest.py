"""POST /api/v1/image/ingest -> an ad.images.created event on Kafka, recorded first in Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException

from imgdup import ids, metrics
from imgdup.http.auth import Access
from imgdup.http.deps import IngestRateLimited, PoolDep, PublisherDep, allow
from imgdup.http.models import IngestAccepted, IngestRequest
from imgdup.kafka.publisher import PublishError
from imgdup.store import events
from schemas import AdImagesCreatedV1, topics
from schemas.wire import encode, encode_key

router = APIRouter()


@router.post(
    "/api/v1/image/ingest",
    status_code=202,
    response_model=IngestAccepted,
    dependencies=[allow(Access.INGEST), IngestRateLimited],
    responses={401: {"description": "Missing or wrong credentials"}, 429: {"description": "Over the rate"}},
    summary="Publish an ad.images.created event for an ad",
)
async def ingest(body: IngestRequest, pool: PoolDep, publisher: PublisherDep) -> IngestAccepted:
    identity = body.model_dump(mode="json", exclude_none=True)
    event = AdImagesCreatedV1(
        schema_version=1,
        event_id=ids.ingest_event_id(identity),
        ad_id=body.ad_id,
        source=body.source,
        category=body.category,
        seller_id=body.seller_id,
        images=body.images,
        # Without the portal's created_at, the accept time stands in for it (and the answer says so).
        created_at=body.created_at or datetime.now(UTC),
    )
    assumed = body.created_at is None
    if not await events.accept_event(pool, event):
        metrics.API_INGEST_REQUESTS.labels("202").inc()
        return IngestAccepted(event_id=event.event_id, already_accepted=True, created_at_assumed=assumed)
    try:
        await publisher.publish(
            topics.AD_IMAGES_CREATED.name,
            key=encode_key(event.ad_id),
            value=encode(event),
        )
    except PublishError as exc:
        await events.forget_accepted_event(pool, event.event_id)
        metrics.API_INGEST_REQUESTS.labels("503").inc()
        raise HTTPException(status_code=503, detail=f"event bus unavailable: {exc}") from exc
    metrics.API_INGEST_REQUESTS.labels("202").inc()
    return IngestAccepted(event_id=event.event_id, created_at_assumed=assumed)
