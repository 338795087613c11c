"""GET /api/v1/progress -> counts of ingest events and pairs by processing state, from Postgres."""

from __future__ import annotations

from fastapi import APIRouter

from imgdup.http.deps import PoolDep
from imgdup.store import progress as store_progress

router = APIRouter()


@router.get(
    "/api/v1/progress",
    response_model=store_progress.Progress,
    summary="Work in flight, from Postgres's processing state",
)
async def progress(pool: PoolDep) -> store_progress.Progress:
    return await store_progress.progress(pool)
