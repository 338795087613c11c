"""Tests for imgdup_core.verify: stored photo pairs in, fused duplicate verdicts out."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import numpy as np
import pytest
from core_images import EDITED_BASES, EDITS, agency_logo, crop, mirror, pipeline_copy

from imgdup_core import verify
from imgdup_core.hashing import phash_pair
from imgdup_core.verify import (
    DEFAULT_VERIFIER,
    Evidence,
    Verdict,
    VerifierConfig,
    verify_pair,
)

Cosine = Callable[[np.ndarray, np.ndarray], float]
UNRELATED = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina"]


def _verify(a: np.ndarray, b: np.ndarray, cosine: Cosine) -> Verdict:
    return verify_pair(a, b, phash_a=phash_pair(a), phash_b=phash_pair(b), cosine=cosine(a, b))


def _geometry(a: np.ndarray, b: np.ndarray) -> verify._Geometry | None:
    side = DEFAULT_VERIFIER.sift_max_side
    return verify._best_geometry(
        verify._working_gray(a, side),
        verify._working_gray(b, side),
        prefer_mirrored=False,
        config=DEFAULT_VERIFIER,
    )


# --- edited copies are duplicates ----------------------------------------------------------------


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_copy_is_a_duplicate(
    edit: str,
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
    cosine: Cosine,
) -> None:
    for name in EDITED_BASES:
        verdict = _verify(stored[name], edited[(name, edit)], cosine)
        evidence = verdict.evidence
        assert verdict.is_duplicate, (name, edit, verdict)
        assert verdict.verifier_version == "fused-v1"
        # Pinned: the geometric check carries every edit, even where the cosine is low
        # (lowest measured: SSIM 0.73 for the heavy watermark and the combo on the rocket).
        assert evidence.sift_inliers >= DEFAULT_VERIFIER.geo_min_inliers, (name, edit, evidence)
        assert evidence.ssim is not None, (name, edit, evidence)
        assert evidence.ssim >= DEFAULT_VERIFIER.geo_min_ssim, (name, edit, evidence)
        assert evidence.sift_mirrored == (edit in ("mirror", "combo")), (name, edit, evidence)


@pytest.mark.parametrize("edit", ["crop25", "mirror", "heavy_watermark", "rotate10"])
def test_direction_does_not_matter(
    edit: str,
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
    cosine: Cosine,
) -> None:
    for name in EDITED_BASES:
        verdict = _verify(edited[(name, edit)], stored[name], cosine)
        assert verdict.is_duplicate, (name, edit, verdict)


def test_mirror_is_seen_by_both_hash_and_geometry(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    verdict = _verify(stored["chelsea"], edited[("chelsea", "mirror")], cosine)
    assert verdict.evidence.phash_mirrored and verdict.evidence.sift_mirrored
    assert verdict.evidence.phash_distance <= 4
    assert verdict.confidence > 0.9


# --- different photos are not ----------------------------------------------------------------------


def test_unrelated_photos_are_not_duplicates(stored: dict[str, np.ndarray], cosine: Cosine) -> None:
    for i, first in enumerate(UNRELATED):
        for second in UNRELATED[i + 1 :]:
            verdict = _verify(stored[first], stored[second], cosine)
            assert not verdict.is_duplicate, (first, second, verdict)
            assert verdict.evidence.ssim is None, (first, second, verdict)
            assert verdict.confidence > 0.8, (first, second, verdict)


@pytest.mark.parametrize(
    ("left_edit", "right_edit"),
    [("none", "none"), ("swap", "none"), ("none", "mirror"), ("none", "crop10"), ("logo", "logo")],
)
def test_stereo_pair_is_not_a_duplicate(
    left_edit: str,
    right_edit: str,
    photos: dict[str, np.ndarray],
    stored: dict[str, np.ndarray],
    cosine: Cosine,
) -> None:
    left, right = stored["moto_left"], stored["moto_right"]
    if left_edit == "swap":
        left, right = right, left
    elif left_edit == "logo":
        left = pipeline_copy(agency_logo(photos["moto_left"]))
    if right_edit == "mirror":
        right = mirror(right)
    elif right_edit == "crop10":
        right = pipeline_copy(crop(photos["moto_right"], 0.1))
    elif right_edit == "logo":
        right = pipeline_copy(agency_logo(photos["moto_right"]))

    verdict = _verify(left, right, cosine)
    evidence = verdict.evidence
    assert not verdict.is_duplicate, verdict
    # Same scene: the embedding and pHash both say "copy" (measured cosine 0.80-0.89, pHash
    # 4-20) and a plausible homography exists, but the aligned pixels disagree.
    assert evidence.cosine > 0.75
    assert evidence.sift_inliers > 100
    assert evidence.ssim is not None and evidence.ssim < 0.6


def test_shared_agency_logo_does_not_make_photos_duplicates(
    photos: dict[str, np.ndarray], cosine: Cosine
) -> None:
    for first, second in (("astronaut", "coffee"), ("chelsea", "rocket")):
        a = pipeline_copy(agency_logo(photos[first]))
        b = pipeline_copy(agency_logo(photos[second]))
        geometry = _geometry(a, b)
        # The logo alone yields dozens of consistent matches...
        assert geometry is not None and geometry.inliers >= 25, (first, second, geometry)
        # ...but either they are too bunched to count as an alignment of the photos (large
        # photo, measured: astronaut/coffee) or the aligned pixels around them disagree (small
        # photo where the logo covers a sixth of it, measured SSIM 0.56: chelsea/rocket).
        verdict = _verify(a, b, cosine)
        evidence = verdict.evidence
        assert not verdict.is_duplicate, (first, second, verdict)
        assert evidence.ssim is None or evidence.ssim < DEFAULT_VERIFIER.geo_min_ssim


# --- homography plausibility -----------------------------------------------------------------------


def _spread_points(width: int, height: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(20, width - 20, 6), np.linspace(20, height - 20, 6))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "matrix", "expected"),
    [
        ("identity", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], True),
        ("rotate 10 and shift", [[0.985, -0.174, 40], [0.174, 0.985, -20], [0, 0, 1]], True),
        ("crop 25 % enlarged", [[0.5, 0, 96], [0, 0.5, 96], [0, 0, 1]], True),
        ("mild perspective", [[1, 0, 0], [0, 1, 0], [0.0004, 0, 1]], True),
        ("collapsed to a sliver", [[0.05, 0, 100], [0, 0.05, 100], [0, 0, 1]], False),
        ("collapsed to a line", [[1, 1, 0], [1, 1, 0], [0, 0, 1]], False),
        ("reflection", [[-1, 0, 384], [0, 1, 0], [0, 0, 1]], False),
        ("huge skew", [[1, 2.5, 0], [0, 1, 0], [0, 0, 1]], False),
        ("anisotropic squash", [[1, 0, 0], [0, 0.3, 0], [0, 0, 1]], False),
        ("crosses the horizon", [[1, 0, 0], [0, 1, 0], [-0.004, 0, 1]], False),
        ("strong perspective", [[1, 0, 0], [0, 1, 0], [0.003, 0.003, 1]], False),
    ],
)
def test_plausibility_of_homographies(name: str, matrix: list[list[float]], expected: bool) -> None:
    homography = np.array(matrix, dtype=np.float64)
    points = _spread_points(384, 384)
    assert verify._plausible(homography, (384, 384), (384, 384), points, DEFAULT_VERIFIER) is (expected), name


def test_bunched_inliers_are_not_plausible() -> None:
    bunched = _spread_points(40, 30) + np.float32([[300, 300]])
    identity = np.eye(3)
    assert not verify._plausible(identity, (384, 384), (384, 384), bunched, DEFAULT_VERIFIER)


# --- fusion rules -----------------------------------------------------------------------------------


def _decide(
    *,
    cosine: float,
    phash: int = 30,
    inliers: int = 0,
    ssim: float | None = None,
    ratio: float = 1.0,
) -> tuple[bool, float]:
    evidence = Evidence(
        phash_distance=phash,
        phash_mirrored=False,
        cosine=cosine,
        sift_inliers=inliers,
        sift_mirrored=False,
        ssim=ssim,
    )
    return verify._decide(evidence, ratio, DEFAULT_VERIFIER)


def test_fusion_routes() -> None:
    # A strong cosine alone decides when geometry has nothing to say (e.g. a tiny thumbnail).
    assert _decide(cosine=0.97)[0]
    assert not _decide(cosine=0.93)[0]
    # A close pHash backed by a moderate cosine.
    assert _decide(cosine=0.85, phash=6)[0]
    assert not _decide(cosine=0.7, phash=6)[0]
    assert not _decide(cosine=0.85, phash=14)[0]
    # Geometry alone carries heavy crops whose cosine is low, but not against an unrelated one.
    assert _decide(cosine=0.5, inliers=15, ssim=0.9)[0]
    assert not _decide(cosine=0.1, inliers=15, ssim=0.9)[0]
    assert not _decide(cosine=0.5, inliers=6, ssim=0.9)[0]


def test_other_shot_vetoes_hash_and_cosine() -> None:
    # Stereo-like evidence: pHash and cosine say "copy", the aligned pixels say otherwise.
    assert not _decide(cosine=0.88, phash=4, inliers=210, ssim=0.49, ratio=0.55)[0]
    # Even a strong cosine yields when only half of the matches fit one homography...
    assert not _decide(cosine=0.97, inliers=210, ssim=0.49, ratio=0.55)[0]
    # ...but not when nearly all of them do (same shot, pixels covered by an overlay).
    assert _decide(cosine=0.97, inliers=210, ssim=0.55, ratio=0.95)[0]


def test_confidence_is_monotone_and_bounded() -> None:
    weak_yes = _decide(cosine=0.5, inliers=9, ssim=0.66)
    strong_yes = _decide(cosine=0.9, inliers=300, ssim=0.97)
    near_no = _decide(cosine=0.9)
    far_no = _decide(cosine=0.05)
    assert weak_yes[0] and strong_yes[0] and not near_no[0] and not far_no[0]
    assert 0.5 <= weak_yes[1] < strong_yes[1] <= 1.0
    assert 0.5 <= near_no[1] < far_no[1] <= 1.0


# --- configuration, determinism, speed -------------------------------------------------------------


def test_changing_a_threshold_requires_a_new_version() -> None:
    with pytest.raises(ValueError, match="new version"):
        VerifierConfig(geo_min_ssim=0.5)
    custom = VerifierConfig(version="fused-v1-lenient", geo_min_ssim=0.5)
    assert custom.geo_min_ssim == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.geo_min_ssim = 0.7  # type: ignore[misc]


def test_custom_config_version_is_reported(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    strict = VerifierConfig(version="strict-test", geo_min_ssim=0.995, strong_cosine=0.999)
    a, b = stored["coffee"], edited[("coffee", "crop25")]
    verdict = verify_pair(
        a, b, phash_a=phash_pair(a), phash_b=phash_pair(b), cosine=cosine(a, b), config=strict
    )
    assert verdict.verifier_version == "strict-test"
    assert not verdict.is_duplicate


def test_verdicts_are_deterministic(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    a, b = stored["rocket"], edited[("rocket", "combo")]
    first = _verify(a, b, cosine)
    verify._FEATURE_CACHE.clear()
    assert _verify(a, b, cosine) == first


def test_rejects_bad_inputs(stored: dict[str, np.ndarray]) -> None:
    a = stored["coffee"]
    pair = phash_pair(a)
    with pytest.raises(ValueError):
        verify_pair(a, a[:, :, 0], phash_a=pair, phash_b=pair, cosine=0.5)
    with pytest.raises(ValueError):
        verify_pair(a, a, phash_a=pair, phash_b=pair, cosine=float("nan"))


def test_featureless_images_fall_back_to_hash_and_cosine() -> None:
    blank = np.full((300, 400, 3), 240, np.uint8)
    pair = phash_pair(blank)
    verdict = verify_pair(blank, blank.copy(), phash_a=pair, phash_b=pair, cosine=0.99)
    assert verdict.is_duplicate
    assert verdict.evidence.sift_inliers == 0 and verdict.evidence.ssim is None


def test_verification_speed(stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray]) -> None:
    pairs = [(stored[n], edited[(n, "watermark")]) for n in EDITED_BASES]
    pairs += [(stored["astronaut"], stored["coffee"]), (stored["moto_left"], stored["moto_right"])]
    timings = []
    for a, b in pairs:
        verify._FEATURE_CACHE.clear()
        pa, pb = phash_pair(a), phash_pair(b)
        started = time.process_time()
        verify_pair(a, b, phash_a=pa, phash_b=pb, cosine=0.5)
        timings.append(time.process_time() - started)
    # CPU seconds, cold (no cached features), all threads: typically 0.1-0.25; a loose bound.
    assert statistics.median(timings) < 0.6, timings
