"""The pHash candidate channel through imgdup.steps on a real Postgres (issue 11): a copy of a
skimage photo under a heavy tiled watermark, whose embedding falls under the ANN cut-off, in; the
pair proposed by its pHash out."""

from __future__ import annotations

import random
from dataclasses import replace

from helpers.fakes import Web
from helpers.photos import jpeg, photo

from bench.quality.overlays import tiled_watermark
from imgdup import ids
from imgdup.steps.index import IndexContext, index_ad
from imgdup_core.hashing import PHASH_CANDIDATE_DISTANCE
from tests.helpers.ads import one_image_event

ORIGINAL = "https://cdn.example/camera.jpg"
COPY = "https://cdn.example/camera-watermarked.jpg"


def _serve(web: Web) -> None:
    original = photo("camera")
    web.files[ORIGINAL] = jpeg(original)
    # Text tiled edge to edge at about half opacity (the broad pool's tiled_watermark edit, drawn
    # by bench/quality/overlays.py): the distilled SSCD cosine to the original is ~0.25, under
    # the ANN cut-off, while pHash stays within 2 bits and SIFT aligns it (~80 inliers).
    web.files[COPY] = jpeg(tiled_watermark(original, random.Random(6)))


async def test_the_ann_search_alone_never_proposes_a_heavily_watermarked_copy(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    _serve(web)
    await index_ad(index_context, one_image_event(1, ORIGINAL))
    result = await index_ad(index_context, one_image_event(2, COPY))
    assert result.candidates == []


async def test_a_heavily_watermarked_copy_is_proposed_by_its_phash(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    _serve(web)
    with_phash = replace(index_context, phash_max_distance=PHASH_CANDIDATE_DISTANCE)
    await index_ad(with_phash, one_image_event(1, ORIGINAL))
    result = await index_ad(with_phash, one_image_event(2, COPY))

    [candidate] = result.candidates
    pair = {ids.image_id(1, ORIGINAL), ids.image_id(2, COPY)}
    assert {candidate.a.image_id, candidate.b.image_id} == pair
    assert candidate.cosine < index_context.min_score  # under the ANN cut-off: the pHash channel's
    # A redelivery proposes the same pair once.
    again = await index_ad(with_phash, one_image_event(2, COPY))
    assert [c.pair_id for c in again.candidates] == [candidate.pair_id]
