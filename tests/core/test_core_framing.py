"""Tests for imgdup_core.framing: screenshots and bordered photos in, the framed photo's box out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from core_images import listing_screenshot, pipeline_copy
from helpers.augly_pages import screenshot, slot_box
from PIL import Image, ImageDraw, ImageFont

from imgdup_core.framing import DEFAULT_FRAMING, Region, crop_region, find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.verify import ImageView, measure_images, verify_images

ORDINARY = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina", "moto_left"]


def _pasted_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Where listing_screenshot pastes the photo (it mirrors that helper's arithmetic)."""
    photo = Image.fromarray(rgb)
    photo.thumbnail((440, 380))
    x0 = 20 + (440 - photo.width) // 2
    y0 = 250 + (380 - photo.height) // 2
    return x0, y0, x0 + photo.width, y0 + photo.height


def _iou(region: Region, box: tuple[int, int, int, int]) -> float:
    ix = max(0, min(region.x1, box[2]) - max(region.x0, box[0]))
    iy = max(0, min(region.y1, box[3]) - max(region.y0, box[1]))
    inter = ix * iy
    union = region.width * region.height + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / union


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera"])
def test_the_photo_inside_a_listing_screenshot_is_found(name: str, photos: dict[str, np.ndarray]) -> None:
    shot = listing_screenshot(photos[name])
    region = find_photo_region(shot)
    assert region is not None, name
    assert _iou(region, _pasted_box(photos[name])) >= 0.9, (name, region)


def test_ordinary_photos_frame_nothing(photos: dict[str, np.ndarray]) -> None:
    for name in ORDINARY:
        assert find_photo_region(photos[name]) is None, name


def test_a_letterboxed_and_bordered_photo_is_cut_out(photos: dict[str, np.ndarray]) -> None:
    photo = photos["chelsea"]  # 300 x 451
    h, w = photo.shape[:2]
    canvas = np.full((h + 160, w + 60, 3), 255, np.uint8)  # white border
    canvas[40 : 40 + h + 80, 30 : 30 + w] = 0  # black letterbox bars above and below
    canvas[80 : 80 + h, 30 : 30 + w] = photo
    region = find_photo_region(canvas)
    assert region is not None
    assert _iou(region, (30, 80, 30 + w, 80 + h)) >= 0.95, region
    assert crop_region(canvas, region).shape[:2] == (region.height, region.width)


def _product_in_an_augly_screenshot(
    rgb: np.ndarray, template: str, aspect: float
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A product shot on white (the photo on a white canvas of width/height `aspect`) in AugLy's
    screenshot template at the template's size, as the benchmark's screenshot edit makes it; and where
    the white picture lies. AugLy letterboxes a picture of another shape than its slot with black bars
    (augly.image.utils.pad_with_black, centred); the picture's white meets the white page with no edge."""
    product = Image.fromarray(rgb)
    height = int(product.height * 1.6)
    picture = Image.new("RGB", (int(height * aspect), height), "white")
    product.thumbnail((int(picture.width * 0.6), int(picture.height * 0.6)))
    picture.paste(product, ((picture.width - product.width) // 2, (picture.height - product.height) // 2))
    x0, y0, x1, y1 = slot_box(template)
    shot = screenshot(picture, template, resize_src_to_match_template=True)
    scale = min((x1 - x0) / picture.width, (y1 - y0) / picture.height)
    shown_w, shown_h = int(picture.width * scale), int(picture.height * scale)
    left, top = x0 + (x1 - x0 - shown_w) // 2, y0 + (y1 - y0 - shown_h) // 2
    return np.asarray(shot), (left, top, left + shown_w, top + shown_h)


@pytest.mark.parametrize(
    ("template", "aspect"),
    [("web.png", 1.0), ("mobile.png", 0.8), ("web.png", 3.0), ("mobile.png", 2.0)],
    ids=["web-pillar-bars", "mobile-pillar-bars", "web-letterbox-bars", "mobile-letterbox-bars"],
)
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_a_product_on_white_in_a_page_is_found_between_its_letterbox_bars(
    name: str, template: str, aspect: float, photos: dict[str, np.ndarray]
) -> None:
    shot, white_box = _product_in_an_augly_screenshot(photos[name], template, aspect)
    region = find_photo_region(shot)
    assert region is not None, name
    assert _iou(region, white_box) >= 0.9, (name, region, white_box)
    # No crisp edge runs along the slot's white sides: without the bars the picture is not found
    # (nothing is, or a bar's own edges are taken for a box).
    edges_only = find_photo_region(shot, dataclasses.replace(DEFAULT_FRAMING, min_bar_length=2.0))
    assert edges_only is None or _iou(edges_only, white_box) < 0.5, edges_only


def _product_in_a_grey_slot(rgb: np.ndarray, *, shadow: bool) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A phone listing page (dark bars, white page with text lines) whose photo slot is light grey
    (240) across the page's width, a product shot on white (251) fitted into it at the slot's width;
    and where that white picture lies. `shadow`: the product casts a soft shadow of the slot's very
    grey that reaches the picture's lower edge."""
    page = np.full((1200, 600, 3), 255, np.uint8)
    page[:150] = 30
    page[180:600] = 240
    picture = np.full((300, 600, 3), 251, np.uint8)
    product = Image.fromarray(rgb)
    product.thumbnail((300, 220))
    px, py = (600 - product.width) // 2, (300 - product.height) // 2
    picture[py : py + product.height, px : px + product.width] = np.asarray(product)
    if shadow:
        picture[py + product.height :, px + product.width // 4 : px + 3 * product.width // 4] = 240
    page[240:540] = picture
    for row in range(680, 1000, 40):  # the listing's text
        page[row : row + 12, 40 : 40 + 480 - (row % 3) * 60] = 90
    return page, (0, 240, 600, 540)


@pytest.mark.parametrize("shadow", [False, True], ids=["plain", "shadow-on-the-bar"])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_a_product_on_white_in_a_grey_slot_is_found_between_its_flat_bars(
    name: str, shadow: bool, photos: dict[str, np.ndarray]
) -> None:
    page, white_box = _product_in_a_grey_slot(photos[name], shadow=shadow)
    region = find_photo_region(page)
    assert region is not None, name
    assert _iou(region, white_box) >= 0.9, (name, region, white_box)
    # The grey (240) meets the white (251) in a step under edge_step: without the flat bars the
    # picture is not found.
    no_flat_bars = find_photo_region(page, dataclasses.replace(DEFAULT_FRAMING, max_bar_levels=0))
    assert no_flat_bars is None or _iou(no_flat_bars, white_box) < 0.5, no_flat_bars


def test_two_dark_stripes_across_an_ordinary_photo_frame_nothing(photos: dict[str, np.ndarray]) -> None:
    # Two dark rectangles of one length (a door's posts, a window's frame) in a textured photo are
    # not a page's letterbox bars: the picture around them is not a flat page.
    for name in ("astronaut", "chelsea", "rocket"):
        rgb = photos[name].copy()
        height, width = rgb.shape[:2]
        rgb[height // 4 : 3 * height // 4, width // 5 : width // 5 + 12] = 5
        rgb[height // 4 : 3 * height // 4, 3 * width // 5 : 3 * width // 5 + 12] = 5
        assert find_photo_region(rgb) is None, name


def test_a_page_of_text_is_not_a_framed_photo() -> None:
    page = Image.new("RGB", (600, 800), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=18)
    for line in range(30):
        draw.text((30, 20 + 25 * line), "Lorem ipsum dolor sit amet, 2 450 PLN " * 2, font=font, fill="black")
    assert find_photo_region(np.asarray(page)) is None


def test_tiny_and_flat_images_frame_nothing() -> None:
    assert find_photo_region(np.zeros((40, 40, 3), np.uint8)) is None
    assert find_photo_region(np.full((400, 300, 3), 200, np.uint8)) is None


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(ValueError):
        find_photo_region(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError):
        find_photo_region(np.zeros((100, 100, 3), np.float32))


# --- the verifier compares framed photos ----------------------------------------------------------


def _view(rgb: np.ndarray) -> ImageView:
    """What the pipeline stores of an upload: the reduced copy and, if framed, the photo's and
    its box as shares of the picture."""
    region = find_photo_region(rgb)
    if region is None:
        return ImageView(pipeline_copy(rgb), phash_pair(rgb), box=None)
    photo = pipeline_copy(crop_region(rgb, region))
    box = region.shares(rgb.shape[1], rgb.shape[0])
    return ImageView(pipeline_copy(rgb), phash_pair(rgb), photo, box=box)


def test_a_screenshot_is_verified_by_the_photo_inside_it(photos: dict[str, np.ndarray]) -> None:
    original = _view(photos["chelsea"])
    shot = _view(listing_screenshot(photos["chelsea"]))
    assert original.photo_rgb is None and shot.photo_rgb is not None
    for a, b, compared in ((original, shot, "full/photo"), (shot, original, "photo/full")):
        verdict = verify_images(a, b, cosine=0.3)  # the whole screenshot's cosine is low
        assert verdict.is_duplicate, verdict
        assert verdict.evidence.compared == compared
        assert verdict.evidence.sift_inliers >= 50 and verdict.evidence.overlap >= 0.9


def test_screenshots_of_different_photos_are_not_duplicates(photos: dict[str, np.ndarray]) -> None:
    # The same page template around two different photos: the template would align perfectly;
    # comparing the photos inside it settles it.
    a = _view(listing_screenshot(photos["chelsea"]))
    b = _view(listing_screenshot(photos["coffee"]))
    evidence = measure_images(a, b, cosine=0.9)
    assert evidence.compared == "photo/photo"
    assert not verify_images(a, b, cosine=0.9).is_duplicate, evidence
    # Two screenshots of one photo are.
    c = _view(listing_screenshot(photos["coffee"]))
    assert verify_images(b, c, cosine=0.9).is_duplicate


def test_a_level_without_a_long_enough_row_or_column_is_not_labelled() -> None:
    # _may_hold_a_bar skips labelling a flat level's mask: it must never skip one that holds a bar.
    from imgdup_core.letterbox import _between_bars, _may_hold_a_bar

    config = DEFAULT_FRAMING
    height, width = 200, 300
    textured = np.zeros((height, width), bool)
    textured[40:160, 60:240] = True
    shortest = int(np.ceil(config.min_bar_length * width))  # a bar's least length along x
    bars = np.zeros((height, width), np.uint8)
    bars[40:160, 20 : 20 + max(config.min_side // 4, 4)] = 1  # two pillar bars, 120 rows tall
    bars[40:160, 260 : 260 + max(config.min_side // 4, 4)] = 1
    assert _may_hold_a_bar(bars.astype(bool), config)
    assert _between_bars(bars, textured, config, trim=True) is not None
    # Specks and short strokes: no row reaches bar_fill x the shortest bar, no column either.
    specks = np.zeros((height, width), bool)
    specks[::13, ::13] = True
    specks[50, 10 : 10 + int(config.bar_fill * shortest) - 1] = True
    least = config.bar_fill * config.min_bar_length
    assert specks.sum(axis=1).max() < least * width and specks.sum(axis=0).max() < least * height
    assert not _may_hold_a_bar(specks, config)
    assert _between_bars(specks.astype(np.uint8), textured, config, trim=True) is None
    # One row long enough is all it takes to be labelled.
    specks[60, 10 : 10 + shortest] = True
    assert _may_hold_a_bar(specks, config)
