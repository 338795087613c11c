"""Tests for fused-v23's band slot (imgdup_core.similarity, VerifierConfig.box_band_check): two screenshots of
one listing template around different products on white, one boxed by the frame finder and the other not,
in; verdicts out (issue 11: Tux Paint stamps in one phone page, the bassoon boxed between its slot's grey
bars against the Bradley spanning the slot unboxed, were one held-out fold's false pair)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from core_images import uploaded, verify_uploads
from helpers.augly_pages import on_white
from PIL import Image, ImageDraw
from skimage import data

from bench.quality.templates import TEMPLATE_BY_NAME, render
from imgdup_core.verifier_config import FUSED_V22, FUSED_V23
from imgdup_core.verify import PAGE_BOX, WHOLE

Cosine = Callable[[np.ndarray, np.ndarray], float]
TEMPLATE = "listing-0"  # its photo slot is light grey


def _narrow(name: str) -> Image.Image:
    """A tall strip of a photo on white: in the slot, grey left and right of it."""
    photo = Image.fromarray(getattr(data, name)()).convert("RGB")
    width, height = photo.size
    return on_white(photo.crop((int(width * 0.45), 0, int(width * 0.63), height)), 1.05)


def _oval(name: str) -> Image.Image:
    """An oval cut of a photo on white, the canvas shaped like the slot: it fills the slot (no grey
    bars) and no straight edge bounds it, so nothing frames it (as the Bradley spanning its slot)."""
    photo = Image.fromarray(getattr(data, name)()).convert("RGB")
    width, height = photo.size
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, width - 1, height - 1), fill=255)
    cut = Image.new("RGB", (width, height), "white")
    cut.paste(photo, (0, 0), mask)
    left, top, right, bottom = TEMPLATE_BY_NAME[TEMPLATE].slot
    return on_white(cut, 1.02, aspect=(right - left) / (bottom - top))


def test_one_product_is_boxed_and_the_other_is_not() -> None:
    # The premise: if both or neither were boxed one day, the tests below would test nothing.
    assert uploaded(render(TEMPLATE, _narrow("astronaut")))[2] is not None
    assert uploaded(render(TEMPLATE, _oval("coffee")))[2] is None


def test_different_products_one_boxed_are_judged_by_the_boxes_band(cosine: Cosine) -> None:
    page_a, page_b = render(TEMPLATE, _narrow("astronaut")), render(TEMPLATE, _oval("coffee"))
    before = verify_uploads(page_a, page_b, cosine, FUSED_V22)
    # fused-v22: the pages align whole; the box alone is no slot (the narrow product's page disagrees
    # outside it, above and below), so only the whole picture's mismatch speaks, and the score nears the cut.
    assert before.evidence.compared == WHOLE and before.score > 0.85, before

    after = verify_uploads(page_a, page_b, cosine, FUSED_V23)

    assert after.evidence.compared == PAGE_BOX, after
    assert after.evidence.mismatch is not None and after.evidence.mismatch > 0.4, after
    assert not after.is_duplicate and after.score < 0.5, after


def test_a_product_and_its_brighter_copy_in_one_template_stay_duplicates(cosine: Cosine) -> None:
    product = _narrow("rocket")
    brighter = product.point(lambda v: min(255, int(v * 1.1)))

    verdict = verify_uploads(render(TEMPLATE, product), render(TEMPLATE, brighter), cosine, FUSED_V23)

    assert verdict.is_duplicate, verdict
