"""Tests for the frame handling of fused-v5, v6, v8, v9, v10 and v12 (imgdup_core.slot, imgdup_core.verify):
screenshots of one page template around photos, and photos with a border-like edge, in; verdicts
out (issue 11)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import uploaded, verify_uploads
from helpers.augly_pages import on_white, screenshot, slot_aspect, slot_shaped
from PIL import Image
from skimage import data

from bench.quality.templates import render
from imgdup_core.verifier_config import (
    FUSED_V5,
    FUSED_V6,
    FUSED_V8,
    FUSED_V9,
    FUSED_V10,
    FUSED_V12,
    FUSED_V14,
    FUSED_V20,
    FUSED_V21,
)
from imgdup_core.verify import PAGE_BOX, SHARED_PAGE, ImageView, Verdict, VerifierConfig, verify_images

# The versions with the shared-page rule (fused-v10: fused-v8's settings, a model fitted on both pools;
# fused-v12: fused-v9 with the slot's fill over its textured blocks, and the slot deciding).
PAGE_RULE_VERIFIERS = [
    FUSED_V5,
    FUSED_V6,
    FUSED_V8,
    FUSED_V9,
    FUSED_V10,
    FUSED_V12,
    FUSED_V14,
    FUSED_V20,
    FUSED_V21,
]
Cosine = Callable[[np.ndarray, np.ndarray], float]


def _upload(image: Image.Image) -> tuple[ImageView, np.ndarray]:
    """What the images agent keeps for an upload: the view the verifier step builds, and the stored copy."""
    view, stored, _ = uploaded(image)
    return view, stored


def _verdict(a: Image.Image, b: Image.Image, cosine: Cosine, config: VerifierConfig = FUSED_V5) -> Verdict:
    return verify_uploads(a, b, cosine, config)


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)())


def _on_white(name: str, canvas: float) -> Image.Image:
    """The photo in the middle of a white canvas `canvas` times its size: a product shot on white."""
    return on_white(_photo(name), canvas)


def _web_screenshot(name: str, canvas: float = 1.0, fill_slot: bool = False) -> Image.Image:
    """The photo (on a white canvas when `canvas` > 1) in AugLy's web-page screenshot template (the
    benchmark's "screenshot" edit), which letterboxes a picture of another shape than its slot with
    black bars. With `fill_slot` the picture is first shaped to the slot (the photo cut, the white
    canvas widened or heightened): no bars, so nothing marks a product on white on the white page."""
    aspect = slot_aspect("web.png") if fill_slot else None
    photo = on_white(_photo(name), canvas, aspect) if canvas > 1.0 else _photo(name)
    if aspect is not None and canvas <= 1.0:
        photo = slot_shaped(photo, aspect)
    return screenshot(photo, "web.png")


@pytest.mark.parametrize(
    ("a", "b"),
    [("rocket", "retina"), ("chelsea", "rocket"), ("coffee", "rocket"), ("immunohistochemistry", "retina")],
)
@pytest.mark.parametrize(
    "config",
    [FUSED_V6, FUSED_V8, FUSED_V9, FUSED_V10, FUSED_V12, FUSED_V14, FUSED_V20, FUSED_V21],
    ids=lambda c: c.version,
)
def test_different_photos_in_one_screenshot_template_with_both_boxes_are_not_duplicates(
    a: str, b: str, cosine: Cosine, config: VerifierConfig
) -> None:
    # The photo box is found in both screenshots, but the whole pages (compared beside the boxes
    # for a false box) align around the two photos with 10-16 % of their texture disagreeing:
    # fused-v5 let that comparison decide, and called rocket/retina a duplicate (p 0.918).
    shot_a, shot_b = _web_screenshot(a), _web_screenshot(b)
    assert _upload(shot_a)[0].frames_photo and _upload(shot_b)[0].frames_photo
    verdict = _verdict(shot_a, shot_b, cosine, config)
    assert not verdict.is_duplicate, verdict
    assert verdict.evidence.compared == "photo/photo", verdict


@pytest.mark.parametrize(
    "config",
    [FUSED_V6, FUSED_V8, FUSED_V9, FUSED_V10, FUSED_V12, FUSED_V14, FUSED_V20, FUSED_V21],
    ids=lambda c: c.version,
)
def test_a_photo_and_its_copy_in_one_screenshot_template_are_duplicates(
    cosine: Cosine, config: VerifierConfig
) -> None:
    verdict = _verdict(_web_screenshot("rocket"), _web_screenshot("rocket"), cosine, config)
    assert verdict.is_duplicate, verdict


@pytest.mark.parametrize(("a", "b"), [("astronaut", "immunohistochemistry"), ("chelsea", "rocket")])
def test_different_photos_in_one_screenshot_page_with_one_box_found_are_not_duplicates(
    a: str, b: str, cosine: Cosine
) -> None:
    # b is a product shot on white shaped to the slot: on the white page its box has no edge (and
    # no letterbox bar) to find, so the two screenshots are compared whole, align on the page and
    # fused-v6 called them duplicates (p 0.952-0.960: the page outside the photos agrees, the small
    # photo is a small share of the texture). fused-v8 judges the page by a's box: it disagrees.
    shot_a, shot_b = _web_screenshot(a, fill_slot=True), _web_screenshot(b, canvas=3.5, fill_slot=True)
    assert _upload(shot_a)[0].frames_photo and not _upload(shot_b)[0].frames_photo
    assert _verdict(shot_a, shot_b, cosine, FUSED_V6).is_duplicate
    for config in (FUSED_V8, FUSED_V9, FUSED_V10, FUSED_V12, FUSED_V14, FUSED_V20, FUSED_V21):
        verdict = _verdict(shot_a, shot_b, cosine, config)
        assert not verdict.is_duplicate, verdict
        # Either comparison may be the one reported; both are rejections.
        assert verdict.evidence.compared in (PAGE_BOX, "photo/full"), verdict


@pytest.mark.xfail(
    strict=True,
    reason="known defect (issue 11, README): with no box found on either side, two pages of one "
    "template around different products on white align whole and are called duplicates",
)
@pytest.mark.parametrize(("a", "b"), [("astronaut", "retina"), ("chelsea", "coffee")])
def test_different_products_on_white_in_one_screenshot_page_are_not_duplicates(
    a: str, b: str, cosine: Cosine
) -> None:
    shot_a, shot_b = _web_screenshot(a, 1.6, fill_slot=True), _web_screenshot(b, 1.6, fill_slot=True)
    assert not _upload(shot_a)[0].frames_photo and not _upload(shot_b)[0].frames_photo
    verdict = _verdict(shot_a, shot_b, cosine, FUSED_V8)
    assert not verdict.is_duplicate, verdict


@pytest.mark.parametrize(("a", "b"), [("astronaut", "retina"), ("chelsea", "coffee"), ("rocket", "coffee")])
@pytest.mark.parametrize(
    "config", [FUSED_V8, FUSED_V9, FUSED_V12, FUSED_V14, FUSED_V20, FUSED_V21], ids=lambda c: c.version
)
def test_different_products_on_white_letterboxed_in_one_screenshot_page_are_not_duplicates(
    a: str, b: str, cosine: Cosine, config: VerifierConfig
) -> None:
    # AugLy letterboxes a picture of another shape than its slot with black bars: the product's white
    # meets the white page with no edge, but the frame finder takes the picture between the bars
    # (imgdup_core.framing), so the two products are compared, not the two pages around them.
    shot_a, shot_b = _web_screenshot(a, 1.6), _web_screenshot(b, 1.6)
    assert _upload(shot_a)[0].frames_photo and _upload(shot_b)[0].frames_photo
    verdict = _verdict(shot_a, shot_b, cosine, config)
    assert not verdict.is_duplicate, verdict
    assert verdict.evidence.compared == "photo/photo", verdict


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "rocket"])
def test_a_product_on_white_and_its_letterboxed_screenshot_are_duplicates(name: str, cosine: Cosine) -> None:
    product = _on_white(name, 1.6)
    shot = _web_screenshot(name, 1.6)
    assert _upload(shot)[0].frames_photo
    verdict = _verdict(product, shot, cosine, FUSED_V12)
    assert verdict.is_duplicate, verdict


@pytest.mark.parametrize(
    "config",
    # fused-v10 missed this copy while the pair was measured in the order given (page first); in
    # content order (imgdup_core.verify._content_order) it does not.
    [FUSED_V8, FUSED_V9, FUSED_V10, FUSED_V12, FUSED_V14, FUSED_V20, FUSED_V21],
    ids=lambda c: c.version,
)
def test_a_box_on_one_side_does_not_hide_the_photo_found_in_the_other_page(
    cosine: Cosine, config: VerifierConfig
) -> None:
    # The same photo, once filling the page's photo slot and once smaller on a white canvas in it:
    # the box rule says the pages differ in the slot, but the box's photo is found inside the other
    # page, and that comparison still decides.
    shot_a, shot_b = (
        _web_screenshot("chelsea", fill_slot=True),
        _web_screenshot("chelsea", 1.6, fill_slot=True),
    )
    assert _upload(shot_a)[0].frames_photo and not _upload(shot_b)[0].frames_photo
    verdict = _verdict(shot_a, shot_b, cosine, config)
    assert verdict.is_duplicate, verdict
    assert verdict.evidence.compared == "photo/full", verdict


@pytest.mark.parametrize(
    ("template", "a", "b"),
    [
        # The frame finder takes the listing's side panel for the photo in the rocket's page:
        # fused-v3 matched that panel inside the other page and called them duplicates.
        ("listing-1", "astronaut", "rocket"),
        ("listing-1", "chelsea", "rocket"),
        ("listing-0", "chelsea", "rocket"),  # no box on either page, compared whole
        ("phone-0", "coffee", "rocket"),
        ("social-0", "coffee", "chelsea"),
    ],
)
@pytest.mark.parametrize("config", PAGE_RULE_VERIFIERS, ids=lambda c: c.version)
def test_different_photos_in_one_page_template_are_not_duplicates(
    template: str, a: str, b: str, cosine: Cosine, config: VerifierConfig
) -> None:
    verdict = _verdict(render(template, _photo(a)), render(template, _photo(b)), cosine, config)
    assert not verdict.is_duplicate, verdict


@pytest.mark.parametrize("config", PAGE_RULE_VERIFIERS, ids=lambda c: c.version)
@pytest.mark.parametrize("template", ["listing-0", "listing-1", "phone-0", "social-1"])
@pytest.mark.parametrize("name", ["chelsea", "rocket"])
def test_a_photo_and_its_copy_in_a_page_template_are_duplicates(
    template: str, name: str, cosine: Cosine, config: VerifierConfig
) -> None:
    # fused-v10's cut (0.961) missed the rocket in listing-0 (0.953-0.955, compared whole) until the frame
    # finder boxed photos in a grey slot beside a textured page (FramingConfig.max_flat_slot_page_texture).
    verdict = _verdict(_photo(name), render(template, _photo(name)), cosine, config)
    assert verdict.is_duplicate, verdict


def _candidate_cosine(
    view_a: ImageView,
    stored_a: np.ndarray,
    view_b: ImageView,
    stored_b: np.ndarray,
    sscd_vector: Callable[[np.ndarray], np.ndarray],
) -> float:
    """The cosine the index step hands the verifier: the best of the whole pictures' and the framed
    photos' vectors (imgdup.steps.index searches both points)."""
    vectors_a = [sscd_vector(stored_a)] + (
        [sscd_vector(view_a.photo_rgb)] if view_a.photo_rgb is not None else []
    )
    vectors_b = [sscd_vector(stored_b)] + (
        [sscd_vector(view_b.photo_rgb)] if view_b.photo_rgb is not None else []
    )
    return max(float(x @ y) for x in vectors_a for y in vectors_b)


def _page_photo(name: str) -> Image.Image:
    """A skimage photo as RGB; "w:NAME" is it on a white canvas 1.6 times its size (a product shot)."""
    if name.startswith("w:"):
        return _on_white(name[2:], 1.6)
    pixels = getattr(data, name)()
    if pixels.dtype == bool:  # the horse silhouette
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return Image.fromarray(pixels[:, :, :3])


def _page_pair(
    template: str, a: str, b: str, sscd_vector: Callable[[np.ndarray], np.ndarray], config: VerifierConfig
) -> Verdict:
    """Two photos (_page_photo names) in one page template, compared as the product compares them."""
    (view_a, stored_a), (view_b, stored_b) = (
        _upload(render(template, _page_photo(a))),
        _upload(render(template, _page_photo(b))),
    )
    cosine = _candidate_cosine(view_a, stored_a, view_b, stored_b, sscd_vector)
    return verify_images(view_a, view_b, cosine=cosine, config=config)


@pytest.mark.parametrize(
    ("template", "a", "b"),
    [("listing-1", "retina", "horse"), ("listing-1", "rocket", "w:retina")],
)
def test_different_photos_in_one_page_judged_by_its_slot_are_not_duplicates(
    template: str, a: str, b: str, sscd_vector: Callable[[np.ndarray], np.ndarray]
) -> None:
    # The pages align and disagree in the photo slot, but fused-v9 only adds that to the mismatch,
    # which fused-v3's model outweighs (a page panel taken for the photo in both pages gives a
    # candidate cosine near 1); fused-v12's slot decides.
    assert _page_pair(template, a, b, sscd_vector, FUSED_V9).is_duplicate
    verdict = _page_pair(template, a, b, sscd_vector, FUSED_V12)
    assert not verdict.is_duplicate, verdict
    assert verdict.evidence.compared == SHARED_PAGE and verdict.score == 0.0, verdict


@pytest.mark.parametrize(("template", "a", "b"), [("listing-1", "horse", "w:astronaut")])
def test_the_slots_fill_over_textured_blocks_finds_pages_around_photos_on_flat_backgrounds(
    template: str, a: str, b: str, sscd_vector: Callable[[np.ndarray], np.ndarray]
) -> None:
    # White canvas and letterbox bars are flat in both pages: counted in the slot's fill they kept
    # it under min_fill, and no slot was inferred (the pair was judged by a box or a panel taken for
    # the photo, and accepted). Counted over textured blocks only, the slot is found and decides.
    without = dataclasses.replace(FUSED_V12, version="fused-v12-no-textured-fill", slot_textured_fill=False)
    assert _page_pair(template, a, b, sscd_vector, without).is_duplicate
    verdict = _page_pair(template, a, b, sscd_vector, FUSED_V12)
    assert not verdict.is_duplicate and verdict.evidence.compared == SHARED_PAGE, verdict


def test_different_photos_in_a_pages_grey_slot_are_compared_by_their_photos(
    sscd_vector: Callable[[np.ndarray], np.ndarray],
) -> None:
    # phone-1 letterboxes its photo with light grey bars (240) whose step to a white picture is under
    # the frame finder's edge step: no box was found, the pages aligned whole and only the slot rule
    # (fused-v12) kept them apart. The flat grey bars now frame both photos, so even fused-v9, which
    # has no such rule, compares the photos themselves.
    verdict = _page_pair("phone-1", "moon", "horse", sscd_vector, FUSED_V9)
    assert not verdict.is_duplicate and verdict.evidence.compared == "photo/photo", verdict


@pytest.mark.parametrize(
    ("template", "name"), [("phone-0", "astronaut"), ("social-1", "coffee"), ("listing-1", "chelsea")]
)
def test_a_photo_and_its_copy_on_white_in_one_page_are_duplicates(
    template: str, name: str, sscd_vector: Callable[[np.ndarray], np.ndarray]
) -> None:
    # The same photo filling the slot in one page and smaller on white in the other: the pages
    # disagree in the slot, which holds the framed photos, so under fused-v12 the photos' own
    # comparison decides (fused-v9 let the page's slot outweigh it).
    assert not _page_pair(template, name, f"w:{name}", sscd_vector, FUSED_V9).is_duplicate
    verdict = _page_pair(template, name, f"w:{name}", sscd_vector, FUSED_V12)
    assert verdict.is_duplicate, verdict


@pytest.mark.xfail(
    strict=True,
    reason="known fused-v12 misses (issue 11, README): one photo, once on white, in one page: the inferred "
    "slot does not hold both framed boxes, so it decides (phone-0: it is inferred only through the "
    "textured fill), where fused-v9's model still accepted the pair",
)
@pytest.mark.parametrize(("template", "name"), [("listing-1", "retina"), ("phone-0", "rocket")])
def test_a_photo_and_its_copy_on_white_in_one_page_are_duplicates_known_misses(
    template: str, name: str, sscd_vector: Callable[[np.ndarray], np.ndarray]
) -> None:
    assert _page_pair(template, name, f"w:{name}", sscd_vector, FUSED_V12).is_duplicate


@pytest.mark.xfail(
    strict=True,
    reason="known defect (issue 11, README): the frame finder takes the listing's details panel for the "
    "photo in both pages (identical crops, candidate cosine 0.98), and no slot is inferred around the photos",
)
def test_photos_whose_pages_both_give_the_panel_as_the_photo_are_not_duplicates(
    sscd_vector: Callable[[np.ndarray], np.ndarray],
) -> None:
    verdict = _page_pair("listing-1", "rocket", "retina", sscd_vector, FUSED_V12)
    assert not verdict.is_duplicate, verdict


def test_photos_whose_pages_both_give_the_panel_as_the_photo_are_told_apart_by_fused_v20(
    sscd_vector: Callable[[np.ndarray], np.ndarray],
) -> None:
    # The known defect above: fused-v20 lets the page's slot beside both boxes decide at any fill.
    verdict = _page_pair("listing-1", "rocket", "retina", sscd_vector, FUSED_V20)
    assert not verdict.is_duplicate, verdict
    assert verdict.evidence.compared == SHARED_PAGE, verdict


def _banded_brick(kind: str) -> Image.Image:
    """skimage's brick wall with a dark band down its left side (an awning's shadow) or a dark
    door frame around it: the frame finder takes a strip of the wall for a framed photo."""
    rgb = np.repeat(data.brick()[:, :, None], 3, axis=2)
    height, width = rgb.shape[:2]
    if kind == "band":
        rgb[:, : width // 5] = 25
    else:
        rgb[:, : width // 6] = 30
        rgb[:, -width // 6 :] = 30
        rgb[: height // 10] = 30
    return Image.fromarray(rgb)


@pytest.mark.parametrize("config", PAGE_RULE_VERIFIERS, ids=lambda c: c.version)
@pytest.mark.parametrize("kind", ["band", "door"])
def test_a_false_box_does_not_hide_a_plain_copy(kind: str, cosine: Cosine, config: VerifierConfig) -> None:
    original = _banded_brick(kind)
    width, height = original.size
    copy = original.crop((width // 12, height // 12, width - width // 12, height - height // 12))
    # Both pictures frame a "photo" (different strips of the wall): comparing only those, as
    # fused-v3 does when both sides frame one, rejected this plain crop.
    assert _upload(original)[0].frames_photo and _upload(copy)[0].frames_photo
    verdict = _verdict(original, copy, cosine, config)
    assert verdict.is_duplicate, verdict
