"""The broad pool's edit families (bench/quality/overlays.py, templates.py): deterministic given a
seed, a tiled watermark over the whole photo at its opacity, stickers of the stated size, and two
different photos in one screenshot template sharing the page around a letterboxed photo."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image
from skimage import data

from bench.quality import overlays, templates
from bench.quality.edits import BROAD_FAMILIES, CLASSIC_FAMILIES, EDIT_FAMILIES

GREY = 128


def _photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((320, 240))


def _uniform(size: tuple[int, int] = (320, 240), value: tuple[int, int, int] = (GREY,) * 3) -> Image.Image:
    return Image.new("RGB", size, value)


@pytest.mark.parametrize("family", BROAD_FAMILIES, ids=lambda f: f.name)
def test_new_families_are_deterministic_given_a_seed(family) -> None:  # type: ignore[no-untyped-def]
    photo = _photo()
    assert family.apply is not None
    first = np.asarray(family.apply(photo, random.Random(7)))
    again = np.asarray(family.apply(photo, random.Random(7)))
    other = np.asarray(family.apply(photo, random.Random(8)))
    assert np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)
    assert not np.array_equal(np.asarray(photo), first[: photo.height, : photo.width])


def test_default_pool_families_keep_their_order() -> None:
    # The order decides which photo gets which edit: the default set stays byte-identical only
    # while the classic families are unchanged and the new ones come after them.
    assert [f.name for f in CLASSIC_FAMILIES] == [
        "exact", "resize", "jpeg", "brightness", "contrast", "flip", "watermark", "crop10",
        "crop25", "rotate", "heavy_watermark", "text_overlay", "emoji", "padding", "screenshot", "combo",
    ]  # fmt: skip
    assert EDIT_FAMILIES[: len(CLASSIC_FAMILIES)] == CLASSIC_FAMILIES
    assert {f.name for f in BROAD_FAMILIES} == {"tiled_watermark", "logo", "sticker", "screenshot_templates"}


@pytest.mark.parametrize("seed", range(6))
def test_tiled_watermark_covers_the_whole_photo_at_its_opacity(seed: int) -> None:
    size = (320, 240)
    layer = overlays.tiled_text(size, random.Random(seed))
    edited = np.asarray(overlays.tiled_watermark(_uniform(size), random.Random(seed)), dtype=np.int16)
    assert 0.4 <= layer.opacity <= 0.6
    mask = np.asarray(layer.mask)
    # Ink in every cell of a 5 x 5 grid: the text is tiled over the whole photo, not a corner.
    for gy in range(5):
        for gx in range(5):
            cell = edited[gy * 48 : (gy + 1) * 48, gx * 64 : (gx + 1) * 64]
            assert (np.abs(cell - GREY).max(axis=2) > 10).mean() > 0.03, (gx, gy)
    # Every pixel is the ink blended at the layer's coverage times that opacity, so where the
    # text is solid it is exactly the opacity, and nowhere more: the photo always shows through.
    assert (mask == 255).any()
    alpha = mask[..., None] / 255.0 * layer.opacity
    expected = np.rint(GREY * (1 - alpha) + np.asarray(layer.color)[None, None, :] * alpha)
    assert np.abs(edited - expected).max() <= 1
    solid = np.rint(GREY * (1 - layer.opacity) + np.asarray(layer.color) * layer.opacity)
    assert np.abs(edited[mask == 255] - solid).max() <= 1


@pytest.mark.parametrize("seed", range(8))
def test_sticker_is_25_to_45_percent_of_the_shorter_side(seed: int) -> None:
    base = _uniform((400, 300), (90, 140, 100))
    edited = np.asarray(overlays.sticker(base, random.Random(seed)), dtype=np.int16)
    changed = np.abs(edited - np.asarray(base, dtype=np.int16)).max(axis=2) > 30
    ys, xs = np.nonzero(changed)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    # Rotated up to 25 degrees inside its square: between ~0.8 and 1 of the chosen side.
    assert 0.2 * 300 <= extent <= 0.45 * 300 + 2


def test_logo_is_semi_transparent() -> None:
    base = _uniform()
    edited = np.asarray(overlays.logo(base, random.Random(3)), dtype=np.int16)
    changed = np.abs(edited - GREY).max(axis=2) > 3
    assert 0.005 < changed.mean() < 0.35
    solid = overlays._logo_mark(60, random.Random(3))  # the same mark, fully opaque
    assert solid.getchannel("A").getextrema()[1] == 255
    assert np.abs(edited - GREY).max() < 255 - GREY  # never the mark's full colour over grey


def test_two_photos_in_one_template_share_the_page_and_are_letterboxed() -> None:
    wide = Image.new("RGB", (400, 100), (250, 0, 0))  # 4:1, fits the slot by its width
    other = Image.fromarray(data.coffee())
    for template in templates.TEMPLATES:
        a = np.asarray(templates.render(template.name, wide))
        b = np.asarray(templates.render(template.name, other))
        assert a.shape == b.shape == (template.size[1], template.size[0], 3)
        left, top, right, bottom = template.slot
        outside = np.ones(a.shape[:2], dtype=bool)
        outside[top:bottom, left:right] = False
        assert np.array_equal(a[outside], b[outside]), template.name  # the same page around the photos
        assert not np.array_equal(a[top:bottom, left:right], b[top:bottom, left:right])
        red = (a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] < 60)
        ys, xs = np.nonzero(red & ~outside)
        width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        assert abs(width / height - 4) < 0.15, template.name  # aspect kept
        assert xs.min() - left <= 1 and right - 1 - xs.max() <= 1  # fitted to the slot's width
        bar = np.asarray(templates.letterbox_color(template.name))
        assert np.array_equal(a[top + 1, (left + right) // 2], bar)  # letterbox above the photo


def test_template_choice_is_seeded() -> None:
    photo = _photo()
    first = np.asarray(templates.screenshot_template(photo, random.Random(5)))
    assert np.array_equal(first, np.asarray(templates.screenshot_template(photo, random.Random(5))))
