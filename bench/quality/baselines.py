"""Per-image hashes and vectors -> [N, N] similarity matrices of the usual baselines, each with
the operating threshold it is normally used at (higher score = more similar)."""

from __future__ import annotations

from dataclasses import dataclass

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


def sscd_baseline(analysed: Analysed, threshold: float = 0.75) -> Baseline:
    """Cosine of the SSCD copy-detection embeddings, the product's own vectors."""
    cosine = analysed.vectors @ analysed.vectors.T
    return Baseline("sscd", f"SSCD cosine >= {threshold}", cosine.astype(np.float64), threshold)


def all_baselines(analysed: Analysed) -> list[Baseline]:
    return [phash_baseline(analysed), pdq_baseline(analysed), sscd_baseline(analysed)]
