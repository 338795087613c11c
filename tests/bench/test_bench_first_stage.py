"""The distilled SSCD as a first stage (bench/quality/first_stage.py): its ANN recall of the full
model's true candidates, and the verdicts the full model's cosine changes on borderline pairs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.quality.analysis import Analysed
from bench.quality.dataset import BenchSet, SetImage
from bench.quality.first_stage import ann_recall, borderline, pair_cosines
from imgdup_core.fusion import FusionModel


def _bench(tmp_path: Path) -> tuple[BenchSet, list[SetImage]]:
    images = [
        SetImage("p.jpg", "p", "original", "test", "1"),
        SetImage("p_crop.jpg", "p", "crop25", "test", "2"),
        SetImage("q.jpg", "q", "original", "test", "3"),
        SetImage("q_jpeg.jpg", "q", "jpeg", "test", "4"),
    ]
    return BenchSet(tmp_path, 1, tuple(images), {}), images


def _unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _analysed(vectors: np.ndarray, photo: dict[int, np.ndarray] | None = None) -> Analysed:
    n = len(vectors)
    photos = np.zeros_like(vectors)
    has = np.zeros(n, bool)
    for k, v in (photo or {}).items():
        photos[k], has[k] = v, True
    return Analysed(
        ["p.jpg", "p_crop.jpg", "q.jpg", "q_jpeg.jpg"][:n],
        vectors,
        np.zeros(n, np.uint64),
        np.zeros(n, np.uint64),
        np.zeros((n, 8, 32), np.uint8),
        [""] * n,
        photos,
        has,
    )


def test_pair_cosine_is_the_best_over_the_image_and_its_framed_photo() -> None:
    vectors = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    plain = _analysed(vectors)
    assert math.isclose(pair_cosines(plain, 0, 1), 0.0, abs_tol=1e-6)
    framed = _analysed(vectors, {1: _unit([[1, 0, 0]])[0]})
    assert math.isclose(pair_cosines(framed, 0, 1), 1.0, abs_tol=1e-6)


def test_ann_recall_counts_the_full_models_true_candidates_the_distilled_one_misses(tmp_path: Path) -> None:
    bench, images = _bench(tmp_path)
    # Full: both copies close to their originals. Distilled: the crop falls far from its original.
    full = _analysed(_unit([[1, 0.1, 0], [1, 0.2, 0], [0, 0, 1], [0, 0.1, 1]]))
    distilled = _analysed(_unit([[1, 0, 0], [-1, 0.05, 0], [0, 0, 1], [0, 0.1, 1]]))
    out = ann_recall(bench, images, full, distilled, top_k=3)
    assert out["sscd"]["true_at_cut_off"] == 2
    assert out["sscd_distilled"]["true_at_cut_off"] == 1
    assert out["full_true_proposed_by_distilled"] == 1
    assert out["distilled_recall_of_full"] == 0.5
    assert out["missed_by_distilled_families"] == {"crop25": 1}


def test_a_borderline_pair_is_rescored_with_the_full_models_cosine(tmp_path: Path) -> None:
    bench, images = _bench(tmp_path)
    # p = sigmoid(10 * cosine - 5), a duplicate at p >= 0.5 (cosine >= 0.5), in both models.
    model = FusionModel(features=("cosine",), weights=(10.0,), bias=-5.0, threshold=0.5)
    full = _analysed(_unit([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0.8, 0, 0.6]]))
    distilled = _analysed(_unit([[1, 0, 0], [0.42, 0.9075, 0], [0, 0, 1], [0.42, 0, 0.9075]]))
    evidence = {
        "phash_distance": 12,
        "phash_mirrored": False,
        "sift_inliers": 0,
        "sift_mirrored": False,
        "ssim": None,
        "exact": False,
    }
    rows = [
        # One photo: the distilled cosine (0.42) rejects it, the full one (0.6) accepts it.
        {"a": "p.jpg", "b": "p_crop.jpg", "cosine": 0.42, "is_duplicate": False, **evidence},
        # Two photos: the same, a wrong change.
        {"a": "p.jpg", "b": "q_jpeg.jpg", "cosine": 0.42, "is_duplicate": False, **evidence},
        # Far from the threshold (cosine 0): in no band.
        {"a": "p.jpg", "b": "q.jpg", "cosine": 0.0, "is_duplicate": False, **evidence},
        # Never verified: left out.
        {"a": "q.jpg", "b": "q_jpeg.jpg", "cosine": 0.9, "is_duplicate": None, **evidence},
    ]
    out = borderline(bench, images, full, distilled, rows, model, model)
    assert out["verified_pairs"] == 3
    assert out["stack_verdicts_agree_with_rescoring"] == 3
    assert out["stack_cosine_differs_from_emulated"] == 0
    by_band = {band["logit_band"]: band for band in out["bands"]}
    assert by_band[0.5]["pairs"] == 0  # logit -0.8 from the threshold
    assert by_band[1.0]["pairs"] == 2 and by_band[1.0]["images"] == 3
    assert by_band[1.0]["verdicts_changed"] == 2
    assert by_band[1.0]["new_true_duplicates"] == 1 and by_band[1.0]["new_false_duplicates"] == 1
    assert by_band[1.0]["changed_to_right"] == 1 and by_band[1.0]["changed_to_wrong"] == 1
    assert by_band[4.0]["pairs"] == 2  # cosine 0 is logit -5 from the threshold
    # One fusion for both: every change came from the cosine.
    assert by_band[1.0]["changed_by_the_cosine"] == 2
    # A full model that accepts at cosine 0.4 already: the same changes, none from the cosine.
    lenient = FusionModel(features=("cosine",), weights=(10.0,), bias=-4.0, threshold=0.5)
    other = borderline(bench, images, full, distilled, rows, model, lenient)
    changed = {band["logit_band"]: band for band in other["bands"]}[1.0]
    assert changed["verdicts_changed"] == 2 and changed["changed_by_the_cosine"] == 0
