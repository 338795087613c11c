"""Two sets of SIFT features -> the best homography mapping b (or its mirror) onto a, and
whether it can be a copy-edit (plausibility, overlap, inlier spread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from imgdup_core.sift import SiftFeatures, mirrored, ratio_test_matches
from imgdup_core.verifier_config import VerifierConfig

__all__ = ["Geometry", "align_flat_again", "best_geometry", "plausible_shares"]


@dataclass(frozen=True)
class Geometry:
    homography: np.ndarray  # maps (possibly mirrored) b onto a, working-size coordinates
    matches: int
    inliers: int
    mirrored: bool
    plausible: bool
    overlap: float  # intersection / the smaller of (a, b projected), 0 when implausible
    # intersection / the larger of (a, b projected), 0 when implausible: how much of both pictures the
    # alignment accounts for (a copy-edit keeps most of its photo; a close-up of one object in another
    # photo of it covers a part of that photo).
    coverage: float = 0.0
    # The RANSAC inliers, working-size coordinates: in a, and in (possibly mirrored) b. What the
    # admin page draws (imgdup_core.explain); not compared: the numbers above are the verdict's.
    inliers_a: np.ndarray | None = field(default=None, compare=False, repr=False)
    inliers_b: np.ndarray | None = field(default=None, compare=False, repr=False)


def best_geometry(
    feats_a: SiftFeatures,
    feats_b: SiftFeatures,
    shape_a: tuple[int, ...],
    *,
    prefer_mirrored: bool,
    config: VerifierConfig,
) -> Geometry | None:
    """The better of the plain and the mirrored fit (plausible first, then more inliers),
    trying `prefer_mirrored` first; None when neither side has enough features or matches."""
    if len(feats_a.points) < config.min_matches or len(feats_b.points) < config.min_matches:
        return None
    best: Geometry | None = None
    for mirror in (prefer_mirrored, not prefer_mirrored):
        candidate = _fit_homography(
            feats_a, mirrored(feats_b) if mirror else feats_b, mirror, shape_a, config
        )
        if candidate is None:
            continue
        if best is None or (candidate.plausible, candidate.inliers) > (best.plausible, best.inliers):
            best = candidate
        if best.plausible and best.inliers >= config.conclusive_inliers:
            break
    return best


def align_flat_again(
    first: Geometry | None,
    feats_a: SiftFeatures,
    feats_b: SiftFeatures,
    *,
    flat_a: Callable[[], SiftFeatures],
    flat_b: Callable[[], SiftFeatures],
    prefer_mirrored: bool,
    cosine: float,
    config: VerifierConfig,
) -> Geometry | None:
    """best_geometry's answer `first`, or, where it found no plausible alignment and a picture has
    fewer keypoints than config.flat_retry_keypoints, the alignment found again with that picture's
    low-contrast features (flat_a / flat_b: sift.extract_flat_features of the same working copy)
    when that one is plausible (fused-v17). A flat, small or blurred photo gives SIFT too few
    keypoints at the default contrast to align a rotated, cropped or watermarked copy of itself."""
    minimum = config.flat_retry_keypoints
    if (first is not None and first.plausible) or minimum <= 0 or cosine < config.flat_retry_min_cosine:
        return first
    again_a = len(feats_a.points) < minimum
    again_b = len(feats_b.points) < minimum
    if not (again_a or again_b):
        return first
    again = best_geometry(
        flat_a() if again_a else feats_a,
        flat_b() if again_b else feats_b,
        (feats_a.height, feats_a.width),
        prefer_mirrored=prefer_mirrored,
        config=config,
    )
    return again if again is not None and again.plausible else first


def _fit_homography(
    feats_a: SiftFeatures,
    feats_b: SiftFeatures,
    mirror: bool,
    shape_a: tuple[int, ...],
    config: VerifierConfig,
) -> Geometry | None:
    query, train = ratio_test_matches(feats_b.descriptors, feats_a.descriptors, config.ratio_test)
    if len(query) < config.min_matches:
        return None
    src = feats_b.points[query]
    dst = feats_a.points[train]
    homography, mask = cv2.findHomography(
        src, dst, cv2.RANSAC, config.ransac_reproj_px, maxIters=2000, confidence=0.995
    )
    if homography is None or mask is None:
        return None
    inlier_mask = mask.ravel().astype(bool)
    inliers = int(inlier_mask.sum())
    shares = plausible_shares(homography, (feats_b.height, feats_b.width), shape_a, dst[inlier_mask], config)
    overlap, coverage = shares or (0.0, 0.0)
    return Geometry(
        homography,
        len(query),
        inliers,
        mirror,
        shares is not None,
        overlap,
        coverage,
        dst[inlier_mask],
        src[inlier_mask],
    )


def plausible_shares(
    homography: np.ndarray,
    shape_b: tuple[int, int],
    shape_a: tuple[int, ...],
    inlier_points_a: np.ndarray,
    config: VerifierConfig,
) -> tuple[float, float] | None:
    """None when the homography cannot be a copy-edit; else the shares of the smaller and of the
    larger picture (a, or b projected onto a) that their intersection covers."""
    if not np.all(np.isfinite(homography)) or abs(homography[2, 2]) < 1e-12:
        return None
    h = homography / homography[2, 2]
    hb, wb = shape_b
    ha, wa = int(shape_a[0]), int(shape_a[1])
    corners = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], dtype=np.float64)
    denominators = corners @ h[2, :2] + h[2, 2]
    if np.any(denominators <= 1e-6):
        return None  # part of b would land beyond the horizon: not a copy-edit
    projected = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), h).reshape(-1, 2)
    quad = projected.astype(np.float32)
    if not cv2.isContourConvex(quad):
        return None

    # Local scale (Jacobian determinant) at each corner: sign flips mean a reflection, a wide
    # spread means strong perspective, and either bound catches collapsed (tiny-area) fits.
    jacobians = []
    for (x, y), w in zip(corners, denominators, strict=True):
        u, v = h[0, 0] * x + h[0, 1] * y + h[0, 2], h[1, 0] * x + h[1, 1] * y + h[1, 2]
        jac = np.array(
            [
                [(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
                [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2],
            ]
        )
        jacobians.append(jac)
    dets = np.array([np.linalg.det(j) for j in jacobians])
    if np.any(dets <= 0):
        return None
    scales = np.sqrt(dets)
    if scales.min() < config.min_scale or scales.max() > config.max_scale:
        return None
    if scales.max() / scales.min() > config.max_perspective:
        return None
    for jac in jacobians:
        singular = np.linalg.svd(jac, compute_uv=False)
        if singular[0] / max(singular[1], 1e-12) > config.max_anisotropy:
            return None

    rect_a = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], dtype=np.float32)
    overlap, _ = cv2.intersectConvexConvex(rect_a, quad)
    quad_area = abs(float(cv2.contourArea(quad)))
    smaller = min(float(wa * ha), quad_area)
    if smaller <= 0 or overlap < config.min_overlap * smaller:
        return None
    if len(inlier_points_a) < 3:
        return None
    # Inliers bunched in one spot (a shared logo, a repeated texture) prove nothing about the
    # rest of the picture.
    hull = cv2.convexHull(inlier_points_a.astype(np.float32))
    spread = float(cv2.contourArea(hull)) / float(overlap)
    if spread < config.min_inlier_spread:
        return None
    larger = max(float(wa * ha), quad_area)
    return min(1.0, float(overlap) / smaller), min(1.0, float(overlap) / larger)
