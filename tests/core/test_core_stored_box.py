"""Tests for the photo box stored at indexing in, the verifier's ImageView out: a view given the box
uses it and never runs the frame finder again; a view not given one computes it as before (issue 11)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from helpers.fakes import count_finder_calls
from PIL import Image
from skimage import data

import imgdup_core.views as views_module
from bench.quality.templates import render
from imgdup_core.decode import decode_image, load_rgb, storage_jpeg
from imgdup_core.framing import Region, crop_region, find_photo_region
from imgdup_core.hashing import phash_pair
from imgdup_core.verifier_config import FUSED_V8, FUSED_V10
from imgdup_core.verify import COMPUTE_BOX, ImageView, VerifierConfig, box_or_compute, decide, measure_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _decoded(image: Image.Image) -> np.ndarray:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return decode_image(buffer.getvalue()).rgb


def _view(rgb: np.ndarray, *, stored_box: bool) -> ImageView:
    """As the verifier step builds it from a stored row: the stored copies as JPEG bytes and, with
    stored_box, the box the indexer found, as shares of the decoded picture."""
    region = find_photo_region(rgb)
    assert region is not None
    height, width = rgb.shape[:2]
    return ImageView(
        None,
        phash_pair(rgb),
        jpeg=storage_jpeg(rgb),
        photo_jpeg=storage_jpeg(crop_region(rgb, region)),
        **({"box": region.shares(width, height)} if stored_box else {}),
    )


def test_region_shares_are_the_box_over_the_picture_size() -> None:
    assert Region(10, 20, 110, 70).shares(200, 100) == (0.05, 0.2, 0.55, 0.7)
    with pytest.raises(ValueError, match="size"):
        Region(0, 0, 1, 1).shares(0, 10)


def test_a_given_box_is_returned_without_running_the_frame_finder(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = _decoded(render("phone-0", Image.fromarray(data.chelsea())))
    view = _view(rgb, stored_box=True)

    def refuse(rgb: np.ndarray) -> Region | None:
        raise AssertionError("the frame finder ran although the box was given")

    monkeypatch.setattr(views_module, "find_photo_region", refuse)
    region = find_photo_region(rgb)
    assert region is not None
    assert view.photo_box() == region.shares(rgb.shape[1], rgb.shape[0])
    # Known to frame nothing: None, again without the finder.
    known_none = ImageView(None, (0, 0), jpeg=storage_jpeg(rgb), photo_jpeg=storage_jpeg(rgb), box=None)
    assert known_none.photo_box() is None


def test_a_view_without_a_given_box_runs_the_frame_finder_on_the_stored_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rgb = _decoded(render("phone-0", Image.fromarray(data.chelsea())))
    calls = count_finder_calls(monkeypatch)
    view = _view(rgb, stored_box=False)
    box = view.photo_box()
    assert calls == [1]
    region = find_photo_region(load_rgb(storage_jpeg(rgb)))
    assert region is not None and box is not None
    assert view.photo_box() == box and calls == [1]  # once per view


@pytest.mark.parametrize("config", [FUSED_V8, FUSED_V10], ids=lambda c: c.version)
def test_pages_compared_whole_use_the_given_boxes(
    monkeypatch: pytest.MonkeyPatch, cosine: Cosine, config: VerifierConfig
) -> None:
    # Two pages of one template around different photos, each framing a box: the whole pictures
    # align and the page rule reads both boxes.
    rgb_a = _decoded(render("social-0", Image.fromarray(data.chelsea())))
    rgb_b = _decoded(render("social-0", Image.fromarray(data.rocket())))
    c = cosine(load_rgb(storage_jpeg(rgb_a)), load_rgb(storage_jpeg(rgb_b)))
    calls = count_finder_calls(monkeypatch)
    computed = measure_images(
        _view(rgb_a, stored_box=False), _view(rgb_b, stored_box=False), cosine=c, config=config
    )
    assert calls, "the pair never reached the page rule: the test would prove nothing"
    calls.clear()
    given = measure_images(
        _view(rgb_a, stored_box=True), _view(rgb_b, stored_box=True), cosine=c, config=config
    )
    assert calls == []
    # The same comparison decides the same way (the two boxes differ by a pixel or so: the finder
    # ran on the decoded picture, not on the stored copy).
    assert given.compared == computed.compared
    assert given.sift_inliers == computed.sift_inliers
    assert decide(given, config).is_duplicate == decide(computed, config).is_duplicate is False


@pytest.mark.parametrize(
    "box", [(0.5, 0.1, 0.4, 0.9), (0.0, 0.0, 1.2, 1.0), (float("nan"), 0.0, 1.0, 1.0), (0.1, 0.2, 0.3)]
)
def test_a_malformed_box_is_refused(box: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="box"):
        ImageView(np.zeros((32, 32, 3), np.uint8), (0, 0), box=box)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "stored", [None, [], [0.1, 0.2, 0.3], [0.5, 0.1, 0.4, 0.9], [float("nan"), 0.0, 1.0, 1.0], [0, 0, 2, 1]]
)
def test_a_missing_or_malformed_stored_box_is_computed_again(stored: list[float] | None) -> None:
    assert box_or_compute(stored) is COMPUTE_BOX


def test_a_stored_box_is_read_back_as_floats() -> None:
    assert box_or_compute([0, 0.25, 1, 0.75]) == (0.0, 0.25, 1.0, 0.75)
