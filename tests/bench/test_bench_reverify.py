"""bench.quality.reverify: a stack run's aligned pairs with a framed picture -> verdicts under two
verifier versions, labelled by the set (fused-v6 against fused-v8 on a screenshot pair)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.augly_pages import on_white, screenshot, slot_aspect, slot_shaped
from PIL import Image
from skimage import data

from bench.quality.reverify import markdown, reverify


def test_a_screenshot_pair_the_box_rule_rejects_is_counted_and_listed(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    names = {"a": "astronaut__screenshot.jpg", "b": "ihc__screenshot.jpg", "c": "plain__original.jpg"}
    images = tmp_path / "images"
    # Both pictures shaped to AugLy's web slot: shown without letterbox bars, which the frame finder would
    # take the product between (imgdup_core.framing); on the white page nothing marks b's product on white.
    aspect = slot_aspect("web.png")
    screenshot(slot_shaped(Image.fromarray(data.astronaut()), aspect)).save(images / names["a"], quality=90)
    product = on_white(Image.fromarray(data.immunohistochemistry()), 3.5, aspect)
    screenshot(product).save(images / names["b"], quality=90)
    Image.fromarray(data.chelsea()).save(images / names["c"], quality=90)
    groups = {"a": ("skimage/astronaut", "screenshot"), "b": ("skimage/ihc", "screenshot")}
    groups["c"] = ("skimage/chelsea", "original")
    rows = [
        {"name": names[k], "group": group, "family": family, "split": "test", "sha256": ""}
        for k, (group, family) in groups.items()
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"images": rows}))
    pairs = tmp_path / "stack-pairs-x.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps(row)
            for row in (
                {"a": names["a"], "b": names["b"], "cosine": 0.73, "ssim": 0.9},  # aligned, one box
                {"a": names["a"], "b": names["c"], "cosine": 0.1, "ssim": None},  # never aligned: skipped
            )
        )
    )
    result = reverify(tmp_path, pairs, "fused-v6", "fused-v8")
    assert result["aligned"] == 1 and result["framed"] == 1
    assert result["counts"] == [{"duplicate": False, "fused-v6": True, "fused-v8": False, "pairs": 1}]
    assert [(c["a"], c["b"], c["duplicate"]) for c in result["changed"]] == [(names["a"], names["b"], False)]
    assert "| False | True | False | 1 |" in markdown(result)
