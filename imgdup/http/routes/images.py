"""GET an image's thumbnail -> the reduced JPEG copy stored for verification, read from the blob store
(the admin page's grids)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from imgdup.http.auth import Access
from imgdup.http.deps import BlobsDep, PoolDep, allow
from imgdup.store import reads

router = APIRouter(dependencies=[allow(Access.READ)])


@router.get(
    "/api/v1/images/{image_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Unknown image"}},
    include_in_schema=False,
)
async def thumbnail(image_id: str, pool: PoolDep, blobs: BlobsDep) -> Response:
    try:
        jpeg = await reads.image_jpeg(pool, image_id, blobs)
    except Exception as exc:
        # Not a UUID, say: Postgres refuses it, and to the caller it is just an unknown image.
        raise HTTPException(status_code=404, detail="unknown image") from exc
    if jpeg is None:
        raise HTTPException(status_code=404, detail="unknown image")
    # private: sellers' photos, for this caller only, never kept by a shared cache.
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
