"""Tests for imgdup_core.verify: a pair's evidence does not depend on which image is passed first
(the product passes its two images in image-id order, which depends on the upload's URL and ad)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import EDITS, listing_screenshot, pipeline_copy

from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.framing import crop_region, find_photo_region
from imgdup_core.hashing import phash_distance, phash_pair
from imgdup_core.sift import extract_sift
from imgdup_core.verifier_config import VERIFIERS
from imgdup_core.verify import ImageView, measure_images, verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _stored_view(upload: np.ndarray) -> ImageView:
    """The verifier agent's view of an upload (imgdup.steps.verify): the stored JPEG copy and its
    stored SIFT features, pHashes of the decoded upload, no pixels."""
    jpeg = storage_jpeg(upload)
    return ImageView(None, phash_pair(upload), jpeg=jpeg, sift=extract_sift(load_rgb(jpeg)))


# Pairs of uploads (photo, edit or None); each measured both ways round. On these the evidence
# measured before the fix differed with the order (pHash distance, SIFT matches, SSIM).
PAIRS = [
    (("rocket", None), ("rocket", "combo")),
    (("astronaut", None), ("astronaut", "crop25")),
    (("coffee", None), ("coffee", "rotate10")),
    (("chelsea", None), ("chelsea", "heavy_watermark")),
    (("moto_left", None), ("moto_right", None)),
    (("astronaut", None), ("coffee", None)),
]


def _upload(photos: dict[str, np.ndarray], key: tuple[str, str | None]) -> np.ndarray:
    name, edit = key
    return photos[name] if edit is None else EDITS[edit](photos[name])


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_evidence_does_not_depend_on_the_order_of_the_pair(
    photos: dict[str, np.ndarray],
    cosine: Cosine,
    a: tuple[str, str | None],
    b: tuple[str, str | None],
) -> None:
    rgb_a, rgb_b = _upload(photos, a), _upload(photos, b)
    c = cosine(pipeline_copy(rgb_a), pipeline_copy(rgb_b))
    for version in ("fused-v3", "fused-v9"):
        config = VERIFIERS[version]
        forward = verify_images(_stored_view(rgb_a), _stored_view(rgb_b), cosine=c, config=config)
        backward = verify_images(_stored_view(rgb_b), _stored_view(rgb_a), cosine=c, config=config)
        assert forward == backward, (version, a, b)


def test_pictures_under_equal_phashes_are_ordered_by_their_pixels(
    photos: dict[str, np.ndarray], cosine: Cosine
) -> None:
    # The pHashes order a pair; two different pictures under the same ones (given equal here)
    # are ordered by their stored pixels, still whichever is passed first.
    rgb_a, rgb_b = photos["rocket"], EDITS["combo"](photos["rocket"])
    same = phash_pair(rgb_a)
    va = ImageView(None, same, jpeg=storage_jpeg(rgb_a))
    vb = ImageView(None, same, jpeg=storage_jpeg(rgb_b))
    c = cosine(pipeline_copy(rgb_a), pipeline_copy(rgb_b))
    assert measure_images(va, vb, cosine=c) == measure_images(vb, va, cosine=c)


def test_screenshot_pair_evidence_does_not_depend_on_the_order(
    photos: dict[str, np.ndarray], cosine: Cosine
) -> None:
    # The kind of pair of issue 11's observation: a listing screenshot (it frames a photo) and
    # another photo; the whole pictures are compared as well, there the pHash distance taken
    # from the first image's side differs from the one taken from the second's.
    shot, other = listing_screenshot(photos["chelsea"]), photos["coffee"]
    assert phash_distance(phash_pair(shot), phash_pair(other)) != phash_distance(
        phash_pair(other), phash_pair(shot)
    )
    region = find_photo_region(shot)
    assert region is not None
    photo_jpeg = storage_jpeg(crop_region(shot, region))
    framed = ImageView(None, phash_pair(shot), jpeg=storage_jpeg(shot), photo_jpeg=photo_jpeg)
    plain = _stored_view(other)
    c = cosine(pipeline_copy(shot), pipeline_copy(other))
    for version in ("fused-v3", "fused-v9"):
        config = VERIFIERS[version]
        forward = measure_images(framed, plain, cosine=c, config=config)
        backward = measure_images(plain, framed, cosine=c, config=config)
        # The same measurements; `compared` names the sides in the order given.
        assert forward.compared == "/".join(reversed(backward.compared.split("/"))), version
        assert forward == dataclasses.replace(backward, compared=forward.compared), version
    # The framed photo was compared (a's side when the screenshot is passed first).
    assert measure_images(framed, plain, cosine=c).compared == "photo/full"
