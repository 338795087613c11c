"""Tests for fused-v25's stricter slot holding the framed photos (VerifierConfig.slot_holds_min_share): two
phone pages of one template in; which comparison judged them and the verdict out (issue 11: pages around a
Grand Canyon photo and a flamingo, the frame finder's boxes taking in the price panel under the photo, were
compared photo to photo, aligned on that panel, and a held-out fold's model accepted them)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from core_images import uploaded, verify_uploads
from helpers.augly_pages import on_white
from PIL import Image, ImageEnhance
from skimage import data

from bench.quality.templates import render
from imgdup_core.verifier_config import FUSED_V24, FUSED_V25
from imgdup_core.verify import SHARED_PAGE

Cosine = Callable[[np.ndarray, np.ndarray], float]
TEMPLATE = "phone-1"


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _product(name: str) -> Image.Image:
    """The middle of a photo on white: a product shot."""
    photo = _photo(name)
    return on_white(photo.crop((int(photo.width * 0.3), 0, int(photo.width * 0.7), photo.height)), 1.1)


def test_the_rocket_pages_box_takes_in_the_price_panel() -> None:
    # The premise: the box runs from the photo down over the panel (to 0.94 of the page), while the
    # product's box is its photo; if that changed, the test below would test something else.
    rocket_box = uploaded(render(TEMPLATE, _photo("rocket")))[2]
    product_box = uploaded(render(TEMPLATE, _product("coffee")))[2]
    assert rocket_box is not None and rocket_box[3] > 0.9, rocket_box
    assert product_box is not None and product_box[3] < 0.6, product_box


def test_a_box_half_outside_the_pages_slot_leaves_the_verdict_to_the_slot(cosine: Cosine) -> None:
    page_a, page_b = render(TEMPLATE, _photo("rocket")), render(TEMPLATE, _product("coffee"))
    before = verify_uploads(page_a, page_b, cosine, FUSED_V24)
    # fused-v24: the slot inferred on the whole pages "holds" the rocket's box (half of it lies in the
    # slot), so the two boxes' contents are compared, the panel under the rocket included.
    assert before.evidence.compared == "photo/photo", before

    after = verify_uploads(page_a, page_b, cosine, FUSED_V25)

    assert after.evidence.compared == SHARED_PAGE, after
    assert not after.is_duplicate and after.score == 0.0, after


def test_one_photo_in_two_pages_of_the_template_stays_a_duplicate(cosine: Cosine) -> None:
    for name in ("rocket", "coffee", "astronaut"):
        page = render(TEMPLATE, _photo(name))
        brighter = render(TEMPLATE, ImageEnhance.Brightness(_photo(name)).enhance(1.25))
        for other in (brighter, ImageEnhance.Brightness(page).enhance(1.2), _photo(name)):
            verdict = verify_uploads(page, other, cosine, FUSED_V25)
            assert verdict.is_duplicate, (name, verdict)
