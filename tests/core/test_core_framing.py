"""Tests for imgdup_core.framing: screenshots and bordered photos in, the framed photo's box out."""

from __future__ import annotations

import numpy as np
import pytest
from core_images import listing_screenshot, pipeline_copy
from PIL import Image, ImageDraw, ImageFont

from imgdup_core.framing import Region, crop_region, find_photo_region
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
