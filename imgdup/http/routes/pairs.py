"""Pair ids and moderators' verdicts -> one pair in detail, and the verdict stored (latest wins)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.models import PairDetail, VerdictRequest, VerdictStored
from imgdup.store import moderation

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
    },
)
async def post_verdict(pair_id: uuid.UUID, body: VerdictRequest, pool: PoolDep) -> VerdictStored:
    stored = await moderation.record_verdict(
        pool, str(pair_id), verdict=body.verdict, moderator=body.moderator, note=body.note
    )
    if stored is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown")
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
