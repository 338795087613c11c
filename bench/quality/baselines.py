"""Per-image hashes and vectors (and, for the seed's rule, the verifier's evidence on ANN
candidates) -> [N, N] similarity matrices of the usual baselines, each with the operating
threshold it is normally used at (higher score = more similar)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.quality.analysis import Analysed


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str  # how the table names its operating point
    scores: np.ndarray  # [N, N], symmetric
    threshold: float  # predicted duplicate when score >= threshold


def _hamming64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    distance: np.ndarray = np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int16)
    return distance


def phash_baseline(analysed: Analysed, max_distance: int = 10) -> Baseline:
    """imagehash pHash (64 bits) as is: no mirror check."""
    distance = _hamming64(analysed.phash, analysed.phash)
    return Baseline("phash", f"pHash distance <= {max_distance}", -distance.astype(np.float64), -max_distance)


def pdq_baseline(analysed: Analysed, max_distance: int = 31) -> Baseline:
    """PDQ (256 bits) in its flip-tolerant dihedral mode: the smallest distance from either
    image's hash to any of the other's 8 rotations/reflections. 31 is PDQ's suggested cut-off."""
    words = analysed.pdq.view(np.uint64)  # [N, 8, 4]
    n = words.shape[0]
    plain = words[:, 0, :]  # [N, 4]
    distance = np.empty((n, n), dtype=np.int16)
    chunk = 64
    for start in range(0, n, chunk):
        block = plain[start : start + chunk]  # [c, 4]
        xor = block[:, None, None, :] ^ words[None, :, :, :]  # [c, N, 8, 4]
        distance[start : start + chunk] = np.bitwise_count(xor).sum(axis=3).min(axis=2)
    distance = np.minimum(distance, distance.T)
    return Baseline(
        "pdq", f"PDQ dihedral distance <= {max_distance}", -distance.astype(np.float64), -max_distance
    )


# The baseline's column and label per embedder (IMGDUP_EMBEDDER): which model's cosine it is.
SSCD_BASELINE_NAMES = {"sscd": ("sscd", "SSCD"), "sscd_distilled": ("sscd_distilled", "distilled SSCD")}


def sscd_baseline(analysed: Analysed, threshold: float = 0.75, embedder: str = "sscd") -> Baseline:
    """Cosine of the SSCD copy-detection embeddings, the product's own vectors (those of
    `embedder`, the model the run embedded with)."""
    name, model = SSCD_BASELINE_NAMES[embedder]
    cosine = analysed.vectors @ analysed.vectors.T
    return Baseline(name, f"{model} cosine >= {threshold}", cosine.astype(np.float64), threshold)


def all_baselines(analysed: Analysed, embedder: str = "sscd") -> list[Baseline]:
    return [phash_baseline(analysed), pdq_baseline(analysed), sscd_baseline(analysed, embedder=embedder)]


# The seed's duplicate rule: all four must hold. The seed's text gives only these thresholds, so
# the benchmark applies them as an AND to the evidence the product's verifier measured for each
# ANN candidate (its SIFT inliers and aligned SSIM at the verifier's settings, its mirror-aware
# pHash); pairs the ANN search never proposed are never predicted, as for the product.
SEED_RULES = {"cosine_above": 0.35, "phash_below": 15, "inliers_above": 30, "ssim_above": 0.8}


def seed_rule(row: Mapping[str, Any]) -> bool:
    """One verified candidate (a `duplicates` row: cosine, phash_distance, sift_inliers, ssim,
    exact) under the seed's rule. Identical stored pixels pass: every one of the four measures
    is at its best on them, although the verifier skips measuring them."""
    if row.get("exact"):
        return True
    ssim = row.get("ssim")
    return (
        row.get("cosine") is not None
        and float(row["cosine"]) > SEED_RULES["cosine_above"]
        and row.get("phash_distance") is not None
        and int(row["phash_distance"]) < SEED_RULES["phash_below"]
        and int(row.get("sift_inliers") or 0) > SEED_RULES["inliers_above"]
        and ssim is not None
        and float(ssim) > SEED_RULES["ssim_above"]
    )


def seed_rules_baseline(
    pairs: Mapping[tuple[str, str], Mapping[str, Any]], index: Mapping[str, int], n: int
) -> Baseline:
    """[N, N]: 1 where the seed's rule holds on a verified candidate, 0 where it does not, -inf
    for pairs never proposed (so no threshold of the curve can predict them)."""
    scores = np.full((n, n), -np.inf)
    for (a, b), row in pairs.items():
        if a in index and b in index:
            i, j = index[a], index[b]
            scores[i, j] = scores[j, i] = 1.0 if seed_rule(row) else 0.0
    label = (
        f"cosine > {SEED_RULES['cosine_above']} and pHash < {SEED_RULES['phash_below']} and inliers > "
        f"{SEED_RULES['inliers_above']} and SSIM > {SEED_RULES['ssim_above']} (on ANN candidates)"
    )
    return Baseline("seed rules", label, scores, 1.0)
