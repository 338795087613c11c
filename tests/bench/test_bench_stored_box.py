"""bench.quality.stored_box on a three-image set: two pages of one template around different photos (each
framing a box) and a plain photo; aligned pairs in, the verdicts with the stored and the re-run box out."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from skimage import data

from bench.quality.stored_box import markdown, measure
from bench.quality.templates import render


def test_measure_compares_the_stored_and_the_re_run_box_on_framed_pairs(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    render("social-0", Image.fromarray(data.chelsea())).save(images / "a.jpg", "JPEG", quality=90)
    render("social-0", Image.fromarray(data.rocket())).save(images / "b.jpg", "JPEG", quality=90)
    Image.fromarray(data.coffee()).save(images / "c.jpg", "JPEG", quality=90)
    rows = [
        {"a": "a.jpg", "b": "b.jpg", "cosine": 0.6, "ssim": 0.7},
        {"a": "c.jpg", "b": "c.jpg", "cosine": 1.0, "ssim": 1.0},  # no frame: not measured
        {"a": "a.jpg", "b": "c.jpg", "cosine": 0.1, "ssim": None},  # not aligned: not measured
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))

    result = measure(tmp_path, pairs, "fused-v10")

    assert (result["pairs"], result["aligned"], result["framed_pairs"]) == (3, 2, 1)
    assert result["counts"] == [{"rerun": False, "stored": False, "pairs": 1}]
    assert result["framed_images"] == 2 and result["rerun_finds_no_box"] == 0
    # The finder on the 512 px copy lands within a few pixels of the box found on the decode.
    assert 0 <= result["box_max_px_max"] < 4
    assert result["finder_cpu_ms_per_stored_copy"] > 0
    assert "| False | False | 1 |" in markdown(result, "pairs.jsonl")
