"""bench.quality.analysis.stored_view: an image file in, the ImageView the verifier step builds from its
stored row out, the photo box the indexer found included (the benchmark measures what production runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import imgdup_core.views as views_module
from bench.quality.analysis import stored_view
from bench.quality.templates import render
from imgdup_core.decode import decode_image
from imgdup_core.framing import Region, find_photo_region


def test_stored_view_carries_the_indexed_box_and_runs_no_frame_finder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page, plain = tmp_path / "page.jpg", tmp_path / "plain.jpg"
    render("social-0", Image.fromarray(data.chelsea())).save(page, "JPEG", quality=90)
    Image.fromarray(data.coffee()).save(plain, "JPEG", quality=90)
    rgb = decode_image(page.read_bytes()).rgb
    region = find_photo_region(rgb)
    assert region is not None

    def refuse(rgb: np.ndarray) -> Region | None:
        raise AssertionError("the verifier ran the frame finder although the box was stored")

    monkeypatch.setattr(views_module, "find_photo_region", refuse)
    framed = stored_view(page, (0, 0))
    assert framed.frames_photo
    assert framed.photo_box() == region.shares(rgb.shape[1], rgb.shape[0])
    assert stored_view(plain, (0, 0)).photo_box() is None
