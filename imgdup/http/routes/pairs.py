"""Pair ids and moderators' verdicts -> one pair in detail, and the verdict stored (latest wins) with a
review of the pair (PairReviewV1) published to the clusterer, the one writer of clusters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, PublisherDep, allow
from imgdup.http.models import PairDetail, VerdictRequest, VerdictStored
from imgdup.kafka.publisher import PublishError
from imgdup.store import moderation
from schemas import PairReviewV1, topics
from schemas.wire import encode, encode_key

router = APIRouter(tags=["moderation"])


@router.post(
    "/api/v1/pairs/{pair_id}/verdict",
    response_model=VerdictStored,
    dependencies=[allow(Access.MODERATE)],
    summary="Record a moderator's verdict on a pair (latest wins; repeating it changes nothing)",
    responses={
        404: {"description": "Unknown pair"},
        401: {"description": "Missing or wrong credentials"},
        403: {"description": "Not a moderator"},
        503: {"description": "Verdict stored, the clusterer not told yet: repeat the request"},
    },
)
async def post_verdict(
    pair_id: uuid.UUID, body: VerdictRequest, pool: PoolDep, publisher: PublisherDep
) -> VerdictStored:
    stored = await moderation.record_verdict(
        pool, str(pair_id), verdict=body.verdict, moderator=body.moderator, note=body.note
    )
    if stored is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown")
    # Also for an unchanged verdict: repeating the request is how a failed hand-over is repaired,
    # and the clusterer's review is idempotent. The clusterer reads the verdict from Postgres.
    review = PairReviewV1(pair_id=str(pair_id), cause="moderator", requested_at=datetime.now(UTC))
    try:
        await publisher.publish(
            topics.PAIRS_VERIFIED.name, key=encode_key(review.pair_id), value=encode(review)
        )
    except PublishError as exc:
        raise HTTPException(
            status_code=503,
            detail=f"verdict stored, clusters not updated: event bus unavailable ({exc}); repeat the request",
            # Tells this 503 from the database's (nothing stored there): the admin page reads it.
            headers={"imgdup-verdict": "stored"},
        ) from exc
    return VerdictStored.model_validate(stored)


@router.get(
    "/api/v1/pairs/{pair_id}",
    response_model=PairDetail,
    dependencies=[allow(Access.READ)],
    summary="One pair: both images, the verifier's evidence and the moderator's verdict",
    responses={404: {"description": "Unknown pair"}},
)
async def get_pair(pair_id: uuid.UUID, pool: PoolDep) -> PairDetail:
    detail = await moderation.pair_detail(pool, str(pair_id))
    if detail is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown")
    return PairDetail.model_validate(detail)
