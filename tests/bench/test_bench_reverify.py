"""bench.quality.reverify: a stack run's aligned pairs with a framed picture -> verdicts under two
verifier versions, labelled by the set (fused-v6 against fused-v8 on a screenshot pair)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image
from skimage import data

from bench.quality.reverify import markdown, reverify


def _shot(photo: Image.Image) -> Image.Image:
    import augly.image as imaugs
    from augly.utils import SCREENSHOT_TEMPLATES_DIR

    template = os.path.join(SCREENSHOT_TEMPLATES_DIR, "web.png")
    shot: Image.Image = imaugs.overlay_onto_screenshot(photo, template_filepath=template)
    return shot.convert("RGB")


# AugLy's web slot (529 x 286): pictures shaped to it are shown without letterbox bars, which the
# frame finder would take the product between (imgdup_core.framing).
_SLOT_ASPECT = 529 / 286


def _slot_shaped(photo: Image.Image) -> Image.Image:
    """The photo cut to the slot's shape."""
    height = min(photo.height, int(photo.width / _SLOT_ASPECT))
    width = int(height * _SLOT_ASPECT)
    left, top = (photo.width - width) // 2, (photo.height - height) // 2
    return photo.crop((left, top, left + width, top + height))


def _on_white(photo: Image.Image) -> Image.Image:
    """A product shot on white, the canvas shaped to the slot: on the white page nothing marks it."""
    height = int(photo.height * 3.5)
    out = Image.new("RGB", (int(height * _SLOT_ASPECT), height), "white")
    out.paste(photo, ((out.width - photo.width) // 2, (out.height - photo.height) // 2))
    return out


def test_a_screenshot_pair_the_box_rule_rejects_is_counted_and_listed(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    names = {"a": "astronaut__screenshot.jpg", "b": "ihc__screenshot.jpg", "c": "plain__original.jpg"}
    images = tmp_path / "images"
    _shot(_slot_shaped(Image.fromarray(data.astronaut()))).save(images / names["a"], quality=90)
    _shot(_on_white(Image.fromarray(data.immunohistochemistry()))).save(images / names["b"], quality=90)
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
