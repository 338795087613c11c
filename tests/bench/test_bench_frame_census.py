"""bench.quality.frame_census: images with their edit family in; how many the frame finder boxes under the
shipped settings and under a variant, per family, and which boxes differ."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.photos import photo, screenshot

from bench.quality import frame_census
from imgdup_core.framing import DEFAULT_FRAMING


def test_a_variant_takes_each_fields_own_type_and_refuses_unknown_ones() -> None:
    config = frame_census.variant(["max_frame_texture=0.5", "min_side=30"])
    assert config.max_frame_texture == 0.5 and config.min_side == 30 and isinstance(config.min_side, int)
    assert config.max_area == DEFAULT_FRAMING.max_area
    for bad in ("no_such_field=1", "max_frame_texture", "min_side=0.5"):
        with pytest.raises(ValueError):
            frame_census.variant([bad])


def test_the_census_counts_boxes_per_family_and_lists_what_changed() -> None:
    shot = np.asarray(screenshot(photo("rocket")))
    plain = np.asarray(photo("astronaut"))
    images = [("rocket__screenshot.jpg", "screenshot", shot), ("astronaut__original.jpg", "original", plain)]
    # No box can be under 1 % of the picture and over 99 % of it: the screenshot's box is lost.
    counts, changed = frame_census.census(images, frame_census.variant(["max_area=0.01"]))
    assert counts == {("screenshot", True, False): 1, ("plain", False, False): 1}
    [(name, shipped, other)] = changed
    assert name == "rocket__screenshot.jpg" and shipped is not None and other is None
    same, nothing = frame_census.census(images, DEFAULT_FRAMING)
    assert same == {("screenshot", True, True): 1, ("plain", False, False): 1} and nothing == []
    result = {
        "fields": ["max_area=0.01"],
        "sets": {
            "set-x": {
                "images": 2,
                "changed": changed,
                "counts": {"screenshot|True|False": 1, "plain|False|False": 1},
            }
        },
    }
    text = frame_census.markdown(result)
    assert "| screenshot | 1 | 1 | 0 | 0 | 1 |" in text and "| plain | 1 | 0 | 0 | 0 | 0 |" in text
