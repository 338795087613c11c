"""GET cluster pages -> live duplicate clusters: the public list, and the admin page's with evidence
and moderators' verdicts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.models import ClustersPage, DayFilter, ModeratedClustersPage, Offset, TextFilter
from imgdup.store import moderation, reads
from schemas.events import AD_ID_MAX

router = APIRouter(dependencies=[allow(Access.READ)])


@router.get(
    "/api/v1/clusters",
    response_model=ClustersPage,
    summary="Duplicate clusters, most recently changed first",
)
async def clusters(
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ClustersPage:
    total, page = await reads.clusters_page(pool, limit=limit, offset=offset)
    return ClustersPage.model_validate({"total": total, "limit": limit, "offset": offset, "clusters": page})


@router.get(
    "/api/v1/admin/clusters",
    response_model=ModeratedClustersPage,
    tags=["moderation"],
    summary="Clusters for the admin page, with evidence and verdicts",
)
async def get_admin_clusters(
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Offset = 0,
    ad_id: Annotated[
        int | None, Query(ge=1, le=AD_ID_MAX, description="Only clusters with an image of this ad")
    ] = None,
    category: TextFilter = None,
    source: TextFilter = None,
    since: Annotated[DayFilter, Query(description="First day (UTC) an image was first seen")] = None,
    until: Annotated[DayFilter, Query(description="Last day (UTC), inclusive")] = None,
    include_rejected: Annotated[
        bool, Query(description="Show (marked) the pairs moderators rejected, instead of leaving them out")
    ] = True,
) -> ModeratedClustersPage:
    page = await moderation.admin_clusters(
        pool,
        limit=limit,
        offset=offset,
        ad_id=ad_id,
        category=category or None,
        source=source or None,
        since=since,
        until=until,
        include_rejected=include_rejected,
    )
    return ModeratedClustersPage.model_validate(page)
