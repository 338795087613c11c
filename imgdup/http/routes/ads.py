"""GET /api/v1/ads/{ad_id} -> the processing state of an ad: its events, images and pairs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.models import AdIdPath, AdState
from imgdup.store import reads

router = APIRouter(dependencies=[allow(Access.READ)])


@router.get(
    "/api/v1/ads/{ad_id}",
    response_model=AdState,
    summary="Processing state of an ad's images",
    responses={404: {"description": "Unknown ad"}},
)
async def ad(ad_id: AdIdPath, pool: PoolDep) -> AdState:
    state = await reads.ad_state(pool, ad_id)
    if state is None:
        raise HTTPException(status_code=404, detail=f"ad {ad_id} is unknown")
    return AdState.model_validate(state)
