"""GET /api/v1/stats -> duplicate ratios by source and category over time, top image hosts and sellers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.store.stats import Stats, duplicate_stats

# Seller ids and hosts: not for the public.
router = APIRouter(tags=["operations"], dependencies=[allow(Access.READ)])

MAX_DAYS = 366


@router.get(
    "/api/v1/stats",
    response_model=Stats,
    summary="Duplicate ratios by source and category, top image hosts and sellers",
)
async def stats(
    pool: PoolDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Window in days, ending today (UTC)")] = 30,
    top: Annotated[
        int, Query(ge=1, le=100, description="Length of the top-domains and top-sellers lists")
    ] = 10,
) -> Stats:
    """Daily buckets are by the day an image was first seen (UTC). The ratio is images in a
    duplicate cluster over images indexed; pairs a moderator marked `not_duplicate` do not count."""
    return await duplicate_stats(pool, days=days, top=top)
