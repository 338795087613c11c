"""Tests for imgdup_core.verify: stored photo pairs in, fused duplicate verdicts out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from core_images import (
    EDITED_BASES,
    EDITS,
    agency_logo,
    crop,
    listing_screenshot,
    mirror,
    pipeline_copy,
    thumbnail,
)

from imgdup_core import verify
from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.hashing import phash_pair
from imgdup_core.verify import (
    DEFAULT_VERIFIER,
    FUSION_FEATURES,
    Evidence,
    FusionModel,
    ImageView,
    Verdict,
    VerifierConfig,
    decide,
    extract_sift,
    fusion_features,
    measure_images,
    measure_pair,
    ratio_test_matches,
    sift_from_bytes,
    sift_to_bytes,
    verify_pair,
)

Cosine = Callable[[np.ndarray, np.ndarray], float]
# Copies the calibrated fusion rejects although they align: on the small rocket photo the tiled
# text leaves aligned SSIM ~0.73 with ~15 % of it disagreeing, and the combo (mirror, crop,
# caption, JPEG 60) keeps only ~25 inliers and SSIM ~0.74, under fused-v3's threshold of ~0.95.
# Pinned so that a model change that fixes or worsens them is noticed; see
# bench/results/quality.md for the rates on the benchmark.
KNOWN_MISSES = {("rocket", "heavy_watermark"), ("rocket", "combo")}
KNOWN_MISSES_REVERSED = {("rocket", "heavy_watermark")}
UNRELATED = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina"]


def _verify(a: np.ndarray, b: np.ndarray, cosine: Cosine) -> Verdict:
    return verify_pair(a, b, phash_a=phash_pair(a), phash_b=phash_pair(b), cosine=cosine(a, b))


def _geometry(a: np.ndarray, b: np.ndarray) -> verify._Geometry | None:
    return verify._best_geometry(
        extract_sift(a),
        extract_sift(b),
        verify._working_gray(a, DEFAULT_VERIFIER).shape,
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
        if (name, edit) in KNOWN_MISSES:
            assert not verdict.is_duplicate and verdict.score >= 0.75, (name, edit, verdict)
        else:
            assert verdict.is_duplicate, (name, edit, verdict)
        assert verdict.verifier_version == "fused-v3"
        # Pinned: the geometric check carries every edit, even where the cosine is low
        # (lowest measured: SSIM 0.73 for the heavy watermark and the combo on the rocket).
        assert evidence.sift_inliers >= 8, (name, edit, evidence)
        assert evidence.ssim is not None and evidence.ssim >= 0.65, (name, edit, evidence)
        assert evidence.mismatch is not None and evidence.mismatch <= 0.2, (name, edit, evidence)
        assert evidence.sift_mirrored == (edit in ("mirror", "combo")), (name, edit, evidence)


# --- each step on a flipped, a cropped and a heavily watermarked copy ----------------------------


def _measure(a: np.ndarray, b: np.ndarray, cosine: Cosine) -> Evidence:
    return measure_pair(a, b, phash_a=phash_pair(a), phash_b=phash_pair(b), cosine=cosine(a, b))


def test_steps_on_a_flipped_copy(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    evidence = _measure(stored["coffee"], edited[("coffee", "mirror")], cosine)
    # pHash: its mirrored hash matches; plain pHash alone would miss it.
    assert evidence.phash_mirrored and evidence.phash_distance <= 6
    # SIFT: the mirrored descriptors align, over the whole picture.
    assert evidence.sift_mirrored and evidence.sift_inliers >= 100
    assert evidence.overlap >= 0.95
    # Aligned SSIM: the flipped-back pixels agree almost everywhere.
    assert evidence.ssim is not None and evidence.ssim >= 0.85
    assert evidence.mismatch is not None and evidence.mismatch <= 0.05
    # SSCD is flip-robust too.
    assert evidence.cosine >= 0.85


def test_steps_on_a_cropped_copy(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    a, b = stored["astronaut"], edited[("astronaut", "crop25")]
    evidence = _measure(a, b, cosine)
    # pHash sees a different picture (the global layout changed).
    assert evidence.phash_distance >= 16
    # SIFT finds the crop inside the original: b covers a part of a entirely.
    geometry = _geometry(a, b)
    assert geometry is not None and geometry.plausible and not geometry.mirrored
    assert evidence.sift_inliers >= 50 and evidence.overlap >= 0.95
    # Aligned SSIM compares the crop with the same part of the original (unaligned it would fail).
    assert evidence.ssim is not None and evidence.ssim >= 0.8
    verdict = decide(evidence)
    assert verdict.is_duplicate and verdict.confidence > 0.75


def test_steps_on_a_heavily_watermarked_copy(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    for name in EDITED_BASES:
        evidence = _measure(stored[name], edited[(name, "heavy_watermark")], cosine)
        # Tiled text covers the picture, yet enough keypoints of the photo survive to align it
        # and the aligned pixels still agree on most of the textured area.
        assert evidence.sift_inliers >= 20, (name, evidence)
        assert evidence.ssim is not None and evidence.ssim >= 0.65, (name, evidence)
        assert evidence.mismatch is not None and evidence.mismatch <= 0.2, (name, evidence)
        verdict = decide(evidence)
        if (name, "heavy_watermark") in KNOWN_MISSES:
            # The photo's own SSIM (0.73) is the lowest of the four: just below the threshold.
            assert not verdict.is_duplicate and verdict.score >= 0.75, (name, verdict)
        else:
            assert verdict.is_duplicate, (name, verdict)


def test_small_crop_of_a_thumbnail_is_aligned(photos: dict[str, np.ndarray], cosine: Cosine) -> None:
    # A 300-pixel listing thumbnail and a copy cropped to half its width and height (150 px):
    # enlarged to the working size first, the crop still yields a plausible alignment.
    small = pipeline_copy(thumbnail(photos["chelsea"], 300))
    tight = pipeline_copy(crop(thumbnail(photos["chelsea"], 300), 0.25))
    evidence = _measure(small, tight, cosine)
    assert evidence.sift_inliers >= 8 and evidence.ssim is not None, evidence
    assert decide(evidence).is_duplicate, evidence


def test_identical_pixels_are_decided_without_the_heavy_methods(stored: dict[str, np.ndarray]) -> None:
    a = stored["rocket"]
    pair = phash_pair(a)
    verdict = verify_pair(a, a.copy(), phash_a=pair, phash_b=pair, cosine=1.0)
    assert verdict.is_duplicate and verdict.confidence == 1.0
    assert verdict.evidence.exact and verdict.evidence.sift_inliers == 0


def test_shared_listing_frame_does_not_make_photos_duplicates(
    photos: dict[str, np.ndarray], cosine: Cosine
) -> None:
    # Screenshots of two different ads from the same portal: the frame aligns perfectly (many
    # inliers, high mean SSIM), the photos inside it disagree.
    a = pipeline_copy(listing_screenshot(photos["chelsea"]))
    b = pipeline_copy(listing_screenshot(photos["coffee"]))
    evidence = _measure(a, b, cosine)
    assert not decide(evidence).is_duplicate, evidence
    assert evidence.ssim is None or (evidence.mismatch is not None and evidence.mismatch >= 0.2), evidence
    # ...while a screenshot of the same photo is a copy of it.
    original = pipeline_copy(photos["chelsea"])
    assert decide(_measure(original, a, cosine)).is_duplicate


@pytest.mark.parametrize("edit", ["crop25", "mirror", "heavy_watermark", "rotate10"])
def test_direction_does_not_matter(
    edit: str,
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
    cosine: Cosine,
) -> None:
    for name in EDITED_BASES:
        verdict = _verify(edited[(name, edit)], stored[name], cosine)
        if (name, edit) in KNOWN_MISSES_REVERSED:
            assert not verdict.is_duplicate and verdict.score >= 0.75, (name, edit, verdict)
        else:
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
        assert evidence.ssim is None or evidence.ssim < 0.65


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


# --- fusion -----------------------------------------------------------------------------------------


def _evidence(
    *,
    cosine: float,
    phash: int = 30,
    inliers: int = 0,
    matches: int | None = None,
    ssim: float | None = None,
    mismatch: float | None = None,
    overlap: float = 1.0,
) -> Evidence:
    aligned = ssim is not None
    return Evidence(
        phash_distance=phash,
        phash_mirrored=False,
        cosine=cosine,
        sift_inliers=inliers,
        sift_mirrored=False,
        ssim=ssim,
        sift_matches=inliers if matches is None else matches,
        overlap=overlap if aligned else 0.0,
        mismatch=(0.0 if mismatch is None else mismatch) if aligned else None,
    )


def _p(**kwargs: float | int | None) -> float:
    return DEFAULT_VERIFIER.fusion.probability(_evidence(**kwargs))  # type: ignore[arg-type]


def test_fusion_decides_on_the_evidence_together() -> None:
    # Without an alignment even a near-identical embedding and hash stay below the threshold:
    # on the training set such pairs were other shots of one product or scene as often as copies.
    assert not decide(_evidence(cosine=0.99, phash=2)).is_duplicate
    assert decide(_evidence(cosine=0.99, phash=2, inliers=40, ssim=0.9)).is_duplicate
    # Geometry and aligned pixels carry a copy whose cosine collapsed (heavy watermark, crop).
    assert decide(_evidence(cosine=0.25, phash=30, inliers=80, ssim=0.9)).is_duplicate
    # Nothing lines up and the embedding is lukewarm: two photos of the same kind of thing.
    assert not decide(_evidence(cosine=0.6, phash=26)).is_duplicate
    # A shared frame lines up perfectly while the photos inside it disagree: not a copy.
    assert not decide(_evidence(cosine=0.7, phash=14, inliers=280, ssim=0.92, mismatch=0.35)).is_duplicate


@pytest.mark.parametrize(
    ("feature", "low", "high"),
    [("cosine", 0.3, 0.9), ("ssim", 0.5, 0.9), ("phash", 28, 4)],
)
def test_more_agreement_never_lowers_the_probability(feature: str, low: float, high: float) -> None:
    base: dict[str, float | int | None] = {"cosine": 0.5, "phash": 20, "inliers": 40, "ssim": 0.75}
    assert _p(**{**base, feature: high}) > _p(**{**base, feature: low})


def test_disagreement_lowers_the_probability() -> None:
    base: dict[str, float | int | None] = {"cosine": 0.6, "phash": 20, "inliers": 100, "ssim": 0.85}
    assert _p(**base, mismatch=0.4) < _p(**base, mismatch=0.02)


def test_confidence_is_bounded_and_grows_away_from_the_threshold() -> None:
    weak_yes = decide(_evidence(cosine=0.5, inliers=30, ssim=0.8))
    strong_yes = decide(_evidence(cosine=0.95, phash=2, inliers=300, ssim=0.97))
    near_no = decide(_evidence(cosine=0.7, phash=22))
    far_no = decide(_evidence(cosine=0.05, phash=34))
    assert weak_yes.is_duplicate and strong_yes.is_duplicate
    assert not near_no.is_duplicate and not far_no.is_duplicate
    assert 0.5 <= weak_yes.confidence <= strong_yes.confidence <= 1.0
    assert 0.5 <= near_no.confidence <= far_no.confidence <= 1.0
    threshold = DEFAULT_VERIFIER.fusion.threshold
    assert weak_yes.score >= threshold > near_no.score


def test_fusion_features_are_derived_from_evidence_only() -> None:
    features = fusion_features(_evidence(cosine=0.9, phash=4, inliers=120, matches=150, ssim=0.8))
    assert set(features) == set(FUSION_FEATURES)
    assert features["inlier_ratio"] == pytest.approx(0.8)
    assert features["no_alignment"] == 0.0
    assert fusion_features(_evidence(cosine=0.9))["no_alignment"] == 1.0


def test_calibrated_model_is_the_committed_one() -> None:
    from imgdup_core import fusion_weights

    model = DEFAULT_VERIFIER.fusion
    assert model.features == tuple(fusion_weights.FEATURES)
    assert model.weights == tuple(fusion_weights.WEIGHTS)
    assert model.threshold == fusion_weights.THRESHOLD
    # Fitted on the benchmark's training split only.
    assert fusion_weights.CALIBRATION["split"] == "train"
    with pytest.raises(ValueError):
        FusionModel(features=("cosine", "colour"), weights=(1.0, 1.0), bias=0.0, threshold=0.5)
    with pytest.raises(ValueError):
        FusionModel(features=("cosine",), weights=(1.0,), bias=0.0, threshold=1.0)


# --- configuration, determinism, speed -------------------------------------------------------------


def test_changing_a_setting_requires_a_new_version() -> None:
    with pytest.raises(ValueError, match="new version"):
        VerifierConfig(ratio_test=0.8)
    lenient = FusionModel(features=("cosine",), weights=(10.0,), bias=-2.0, threshold=0.5)
    with pytest.raises(ValueError, match="new version"):
        VerifierConfig(fusion=lenient)
    custom = VerifierConfig(version="fused-v2-lenient", fusion=lenient)
    assert custom.fusion is lenient
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.ratio_test = 0.7  # type: ignore[misc]


def test_custom_config_version_is_reported(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    never = FusionModel(features=("cosine",), weights=(1.0,), bias=-30.0, threshold=0.999)
    strict = VerifierConfig(version="strict-test", fusion=never)
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


def test_featureless_images_are_not_decided_by_hash_and_cosine_alone() -> None:
    blank = np.full((300, 400, 3), 240, np.uint8)
    paler = np.full((300, 400, 3), 244, np.uint8)
    verdict = verify_pair(blank, paler, phash_a=phash_pair(blank), phash_b=phash_pair(paler), cosine=0.99)
    # Nothing to align: fused-v2 does not call a duplicate on the embedding and hash alone
    # (identical pixels are still a duplicate: the exact rule).
    assert not verdict.is_duplicate and 0.75 <= verdict.score < DEFAULT_VERIFIER.fusion.threshold
    assert not verdict.evidence.exact
    assert verdict.evidence.sift_inliers == 0 and verdict.evidence.ssim is None


# --- stored features and the matcher ------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "mirrored"),
    [
        (("astronaut", None), ("astronaut", "watermark"), False),
        (("coffee", None), ("coffee", "mirror"), True),
        (("astronaut", None), ("coffee", None), False),
        (("moto_left", None), ("moto_right", None), False),
    ],
)
def test_ratio_test_matches_are_opencvs_brute_force_matches(
    stored: dict[str, np.ndarray],
    edited: dict[tuple[str, str], np.ndarray],
    a: tuple[str, str | None],
    b: tuple[str, str | None],
    mirrored: bool,
) -> None:
    def picture(key: tuple[str, str | None]) -> np.ndarray:
        name, edit = key
        return stored[name] if edit is None else edited[(name, edit)]

    feats_a, feats_b = extract_sift(picture(a)), extract_sift(picture(b))
    query = verify._mirrored(feats_b).descriptors if mirrored else feats_b.descriptors
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query, feats_a.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    rows, nearest = ratio_test_matches(query, feats_a.descriptors, 0.75)
    assert [m.queryIdx for m in good] == rows.tolist()
    assert [m.trainIdx for m in good] == nearest.tolist()
    assert len(good) >= 8 or a[0] != b[0]  # the copies do match


def test_ratio_test_matches_of_too_few_descriptors() -> None:
    descriptors = np.arange(3 * 128, dtype=np.float32).reshape(3, 128) % 200
    assert len(ratio_test_matches(descriptors, descriptors[:1], 0.75)[0]) == 0
    assert len(ratio_test_matches(descriptors[:0], descriptors, 0.75)[0]) == 0
    rows, nearest = ratio_test_matches(descriptors, descriptors, 0.75)
    assert rows.tolist() == [0, 1, 2] and nearest.tolist() == [0, 1, 2]


@pytest.mark.parametrize("edit", ["watermark", "mirror", "crop25", "combo"])
def test_stored_features_give_the_same_evidence(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine, edit: str
) -> None:
    a, b = stored["astronaut"], edited[("astronaut", edit)]
    blob_a, blob_b = sift_to_bytes(extract_sift(a)), sift_to_bytes(extract_sift(b))
    sift_a, sift_b = sift_from_bytes(blob_a), sift_from_bytes(blob_b)
    assert sift_a is not None and sift_b is not None
    fresh = extract_sift(a)
    np.testing.assert_array_equal(sift_a.points, fresh.points)
    np.testing.assert_array_equal(sift_a.descriptors, fresh.descriptors)
    assert (sift_a.width, sift_a.height) == (fresh.width, fresh.height)
    assert len(blob_a) < 150 * max(1, len(fresh.points))

    hashes, c = (phash_pair(a), phash_pair(b)), cosine(a, b)
    verify._FEATURE_CACHE.clear()
    extracted = measure_pair(a, b, phash_a=hashes[0], phash_b=hashes[1], cosine=c)
    verify._FEATURE_CACHE.clear()
    given = measure_pair(a, b, phash_a=hashes[0], phash_b=hashes[1], cosine=c, sift_a=sift_a, sift_b=sift_b)
    assert given == extracted
    assert not verify._FEATURE_CACHE  # nothing was extracted


def test_stored_features_of_other_settings_are_not_used(stored: dict[str, np.ndarray]) -> None:
    blob = sift_to_bytes(extract_sift(stored["coffee"]))
    other = VerifierConfig(version="fewer-features", sift_features=500)
    assert sift_from_bytes(blob, other) is None
    with pytest.raises(ValueError):
        sift_from_bytes(blob[:-1])
    with pytest.raises(ValueError):
        sift_from_bytes(b"JPEG" + blob[4:])
    with pytest.raises(ValueError):
        sift_from_bytes(blob[:10])


def _lazy_view(rgb: np.ndarray, *, with_sift: bool = True) -> ImageView:
    """The verifier agent's view: stored JPEG bytes (and features), no pixels."""
    jpeg = storage_jpeg(rgb)
    return ImageView(
        None, phash_pair(rgb), jpeg=jpeg, sift=extract_sift(load_rgb(jpeg)) if with_sift else None
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("astronaut", None), ("astronaut", "watermark")),
        (("coffee", None), ("coffee", "mirror")),
        (("astronaut", None), ("coffee", None)),
        (("moto_left", None), ("moto_right", None)),
    ],
)
def test_stored_jpeg_views_measure_what_pixel_views_measure(
    photos: dict[str, np.ndarray],
    cosine: Cosine,
    a: tuple[str, str | None],
    b: tuple[str, str | None],
) -> None:
    def upload(key: tuple[str, str | None]) -> np.ndarray:
        name, edit = key
        return photos[name] if edit is None else EDITS[edit](photos[name])

    rgb_a, rgb_b = upload(a), upload(b)
    lazy_a, lazy_b = _lazy_view(rgb_a), _lazy_view(rgb_b)
    pixels_a = ImageView(load_rgb(storage_jpeg(rgb_a)), phash_pair(rgb_a))
    pixels_b = ImageView(load_rgb(storage_jpeg(rgb_b)), phash_pair(rgb_b))
    c = cosine(pixels_a.pixels(), pixels_b.pixels())
    verify._FEATURE_CACHE.clear()
    lazy = measure_images(lazy_a, lazy_b, cosine=c)
    verify._FEATURE_CACHE.clear()
    assert lazy == measure_images(pixels_a, pixels_b, cosine=c)
    # Only a pair that aligns needs the pixels (for the aligned SSIM).
    aligned = lazy.ssim is not None
    assert bool(lazy_a._decoded) == aligned and bool(lazy_b._decoded) == aligned
    if a[0] == b[0]:
        assert aligned


def test_identical_stored_copies_are_exact_without_decoding(photos: dict[str, np.ndarray]) -> None:
    a, b = _lazy_view(photos["chelsea"]), _lazy_view(photos["chelsea"].copy())
    evidence = measure_images(a, b, cosine=1.0)
    assert evidence.exact and not a._decoded and not b._decoded
    without_features = _lazy_view(photos["rocket"], with_sift=False)
    other = _lazy_view(photos["rocket"][:, :-8].copy(), with_sift=False)
    assert not measure_images(without_features, other, cosine=0.9).exact  # features extracted here
    with pytest.raises(ValueError):
        ImageView(None, (0, 0))
