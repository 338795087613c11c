"""GET an ad's duplicates (public and admin URLs, one implementation) -> other ads sharing its photos:
those with a verified pair, then those linked through a duplicate cluster."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.duplicate_models import AdDuplicates
from imgdup.http.models import AdIdPath
from imgdup.store import moderation

router = APIRouter(dependencies=[allow(Access.READ)])

# Ads matched through a cluster alone: a photo re-posted by many ads puts them all in one cluster.
DEFAULT_CLUSTER_MATES = 200
MAX_CLUSTER_MATES = 1000


# Both URLs serve the same answer (the admin one came first); the decorator nearest the function
# registers first, so the public URL leads in the OpenAPI document.
@router.get(
    "/api/v1/admin/duplicates/{ad_id}",
    response_model=AdDuplicates,
    name="get_moderated_duplicates",
    tags=["moderation"],
    summary="Ads sharing duplicate images with this ad, moderators' verdicts applied",
)
@router.get(
    "/api/v1/duplicates/{ad_id}",
    response_model=AdDuplicates,
    summary="Ads sharing duplicate images with this ad",
)
async def duplicates(
    ad_id: AdIdPath,
    pool: PoolDep,
    cluster_mates: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_CLUSTER_MATES,
            description="The most ads listed through a shared cluster alone (0: verified pairs only)",
        ),
    ] = DEFAULT_CLUSTER_MATES,
) -> AdDuplicates:
    # Moderators' verdicts apply: a pair marked "not a duplicate" is not presented as one.
    found = await moderation.moderated_duplicates_of_ad(pool, ad_id, cluster_mates=cluster_mates)
    return AdDuplicates.model_validate({"ad_id": ad_id, **found})
