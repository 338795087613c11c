"""GET an ad's duplicates (public and admin URLs, one implementation) -> other ads sharing its photos."""

from __future__ import annotations

from fastapi import APIRouter

from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.models import AdDuplicates, AdIdPath
from imgdup.store import moderation

router = APIRouter(dependencies=[allow(Access.READ)])


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
async def duplicates(ad_id: AdIdPath, pool: PoolDep) -> AdDuplicates:
    # Moderators' verdicts apply: a pair marked "not a duplicate" is not presented as one.
    others = await moderation.moderated_duplicates_of_ad(pool, ad_id)
    return AdDuplicates.model_validate({"ad_id": ad_id, "duplicates": others})
