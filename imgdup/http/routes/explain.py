"""Pair ids -> why the verifier decided: matched keypoints, the compared box and mirror as JSON, and the
aligned overlay and difference as a JPEG, recomputed from the stored copies and features (admin page)."""

from __future__ import annotations

import io
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from imgdup.blobs.base import BlobStore
from imgdup.http.auth import Access
from imgdup.http.deps import BlobsDep, PoolDep, allow
from imgdup.http.models import PairExplanation
from imgdup.store import moderation
from imgdup_core.explain import Explanation, Side, box_fractions, explain_pair, overlay_panels
from imgdup_core.verifier_config import VERIFIERS, default_verifier_for
from imgdup_core.verify import BoxUnknown, box_or_compute

router = APIRouter(tags=["moderation"], dependencies=[allow(Access.READ)])
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown pair, or its images have no stored copy"}
}


def _side(row: dict[str, Any]) -> Side:
    # The shares stored at indexing (migration 013); rows of before it: the pixel box over the decode
    # size worked out from the original's (box_fractions).
    stored = box_or_compute(row.get("photo_box_share"))
    box = row["photo_box"]
    if not isinstance(stored, BoxUnknown):
        fractions: tuple[float, float, float, float] | None = stored
    elif box and len(box) == 4:
        fractions = box_fractions(tuple(box), row["width"] or 0, row["height"] or 0)
    else:
        fractions = None
    return Side(
        jpeg=bytes(row["jpeg"]),
        photo_jpeg=bytes(row["photo_jpeg"]) if row["photo_jpeg"] else None,
        sift=bytes(row["sift"]) if row["sift"] else None,
        photo_sift=bytes(row["photo_sift"]) if row["photo_sift"] else None,
        photo_box=fractions,
        # The verifier measured the pair in the pHashes' order: so is it explained.
        phash=(int(row["phash"]), int(row["phash_mirrored"])) if row.get("phash") is not None else None,
    )


async def _explain(
    pool: Any, blobs: BlobStore, pair_id: uuid.UUID
) -> tuple[dict[str, Any], Explanation, Any, Any]:
    pair = await moderation.pair_for_explanation(pool, str(pair_id), blobs)
    if pair is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} is unknown or has no stored images")
    # Measurement settings of the version that decided; one not built in (a retrained model measures
    # as its base) is explained with the full SSCD's default verifier's.
    config = VERIFIERS.get(pair["verifier_version"] or "") or default_verifier_for("sscd")
    a, b = _side(pair["side_a"]), _side(pair["side_b"])
    # CPU work (decode, match, RANSAC): off the event loop.
    explanation, rgb_a, rgb_b = await run_in_threadpool(
        lambda: explain_pair(
            a,
            b,
            compared=pair["compared"] or "full/full",
            prefer_mirrored=bool(pair["sift_mirrored"] or pair["phash_mirrored"]),
            cosine=float(pair["cosine"]),
            config=config,
        )
    )
    return pair, explanation, rgb_a, rgb_b


@router.get(
    "/api/v1/pairs/{pair_id}/explanation",
    response_model=PairExplanation,
    summary="Why a pair was judged: matched keypoints, mirror and compared box, for the admin page",
    responses=_UNKNOWN,
)
async def explanation(pair_id: uuid.UUID, pool: PoolDep, blobs: BlobsDep) -> PairExplanation:
    pair, explained, _, _ = await _explain(pool, blobs, pair_id)
    return PairExplanation(
        pair_id=pair["pair_id"],
        image_a=pair["image_a"],
        image_b=pair["image_b"],
        compared=explained.compared,
        aligned=explained.aligned,
        mirrored=explained.mirrored,
        inliers=explained.inliers,
        stored_inliers=pair["sift_inliers"],
        matches=list(explained.matches),
        box_a=explained.box_a,
        box_b=explained.box_b,
        overlay_url=f"/api/v1/pairs/{pair['pair_id']}/overlay" if explained.aligned else None,
    )


@router.get(
    "/api/v1/pairs/{pair_id}/overlay",
    response_class=Response,
    summary="The pair aligned: b overlaid on a, and their difference (JPEG)",
    responses={200: {"content": {"image/jpeg": {}}}, **_UNKNOWN},
    include_in_schema=False,  # an image, as the thumbnails: the JSON document lists models only
)
async def overlay(pair_id: uuid.UUID, pool: PoolDep, blobs: BlobsDep) -> Response:
    _, explained, rgb_a, rgb_b = await _explain(pool, blobs, pair_id)

    def render() -> bytes | None:
        panels = overlay_panels(explained, rgb_a, rgb_b)
        if panels is None:
            return None
        out = io.BytesIO()
        Image.fromarray(panels).save(out, format="JPEG", quality=85)
        return out.getvalue()

    jpeg = await run_in_threadpool(render)
    if jpeg is None:
        raise HTTPException(status_code=404, detail=f"pair {pair_id} does not align: nothing to overlay")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
