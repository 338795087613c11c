"""Tests for imgdup_core.verify: two stored images (ImageView) in, evidence and fused verdicts out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import (
    EDITED_BASES,
    EDITS,
    SKY_EDITS,
    agency_logo,
    crop,
    listing_screenshot,
    mirror,
    pipeline_copy,
    thumbnail,
)

from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.fusion import FusionModel
from imgdup_core.geometry import Geometry, best_geometry
from imgdup_core.gray import working_gray
from imgdup_core.hashing import phash_pair
from imgdup_core.sift import FeatureCache, extract_sift, sift_from_bytes, sift_to_bytes
from imgdup_core.verifier_config import FUSED_V4, FUSED_V5, FUSED_V9, FUSED_V12
from imgdup_core.verify import (
    DEFAULT_VERIFIER,
    SHARED_PAGE,
    Evidence,
    ImageView,
    Verdict,
    VerifierConfig,
    decide,
    measure_images,
    verify_images,
)

Cosine = Callable[[np.ndarray, np.ndarray], float]
# Copies the calibrated fusion rejects although they align: on the small rocket photo the tiled
# text leaves aligned SSIM ~0.73 with ~15 % of it disagreeing, and the combo (mirror, crop,
# caption, JPEG 60) keeps only ~25 inliers and SSIM ~0.74, under fused-v3's threshold of ~0.95.
# Pinned so that a model change that fixes or worsens them is noticed; see
# bench/results/quality.md for the rates on the benchmark.
KNOWN_MISSES = {("rocket", "heavy_watermark"), ("rocket", "combo")}
UNRELATED = ["astronaut", "coffee", "chelsea", "rocket", "camera", "ihc", "hubble", "retina"]


def _view(rgb: np.ndarray) -> ImageView:
    """A stored copy given as pixels (its pHashes taken from the same pixels)."""
    return ImageView(rgb, phash_pair(rgb))


def _verify(
    a: np.ndarray, b: np.ndarray, cosine: Cosine, config: VerifierConfig = DEFAULT_VERIFIER
) -> Verdict:
    return verify_images(_view(a), _view(b), cosine=cosine(a, b), config=config)


def _measure(a: np.ndarray, b: np.ndarray, cosine: Cosine) -> Evidence:
    return measure_images(_view(a), _view(b), cosine=cosine(a, b))


def _geometry(a: np.ndarray, b: np.ndarray) -> Geometry | None:
    return best_geometry(
        extract_sift(a),
        extract_sift(b),
        working_gray(a, DEFAULT_VERIFIER).shape,
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
    assert evidence.embedding_cosine >= 0.85


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


@pytest.mark.parametrize("edit", list(SKY_EDITS.values()), ids=list(SKY_EDITS))
def test_flat_sky_copy_with_brightness_changed_is_aligned(
    photos: dict[str, np.ndarray], cosine: Cosine, edit: Callable[[np.ndarray], np.ndarray]
) -> None:
    # Issue 11's flat blind spot, on a real photo: the rocket photo's sky (its top 200 rows) has
    # ~100 SIFT keypoints at the default contrast threshold; darkened or flattened, its copy keeps
    # none that match (fused-v3: 0 inliers, no alignment, rejected at cosine 0.89-0.94).
    # fused-v4's low-texture second pass aligns it with 25-35 inliers.
    sky = photos["rocket"][:200]
    original, copy = pipeline_copy(sky), pipeline_copy(edit(sky))
    before = measure_images(_view(original), _view(copy), cosine=cosine(original, copy))
    assert before.sift_inliers == 0 and not decide(before).is_duplicate, before
    evidence = measure_images(_view(original), _view(copy), cosine=cosine(original, copy), config=FUSED_V4)
    assert evidence.sift_inliers >= 15 and evidence.ssim is not None, evidence
    assert evidence.overlap >= 0.9 and evidence.mismatch is not None and evidence.mismatch <= 0.05, evidence
    verdict = decide(evidence, FUSED_V4)
    assert verdict.is_duplicate and verdict.verifier_version == "fused-v4", verdict
    # fused-v5 keeps the second pass, with its own calibrated model.
    v5 = verify_images(_view(original), _view(copy), cosine=cosine(original, copy), config=FUSED_V5)
    assert v5.is_duplicate and v5.verifier_version == "fused-v5" and v5.evidence.sift_inliers >= 15, v5


def test_identical_pixels_are_decided_without_the_heavy_methods(stored: dict[str, np.ndarray]) -> None:
    a = stored["rocket"]
    verdict = verify_images(_view(a), _view(a.copy()), cosine=1.0)
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
        if (name, edit) in KNOWN_MISSES:  # the verdict does not depend on the order
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
    assert evidence.embedding_cosine > 0.75
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


def test_featureless_images_are_not_decided_by_hash_and_cosine_alone() -> None:
    blank = np.full((300, 400, 3), 240, np.uint8)
    paler = np.full((300, 400, 3), 244, np.uint8)
    verdict = verify_images(_view(blank), _view(paler), cosine=0.99)
    # Nothing to align: fused-v2 does not call a duplicate on the embedding and hash alone
    # (identical pixels are still a duplicate: the exact rule).
    assert not verdict.is_duplicate and 0.75 <= verdict.score < DEFAULT_VERIFIER.fusion.threshold
    assert not verdict.evidence.exact
    assert verdict.evidence.sift_inliers == 0 and verdict.evidence.ssim is None


# --- configuration, determinism, inputs -----------------------------------------------------------


def test_custom_config_version_is_reported(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    never = FusionModel(features=("cosine",), weights=(1.0,), bias=-30.0, threshold=0.999)
    strict = VerifierConfig(version="strict-test", fusion=never)
    verdict = _verify(stored["coffee"], edited[("coffee", "crop25")], cosine, strict)
    assert verdict.verifier_version == "strict-test"
    assert not verdict.is_duplicate


def test_verdicts_are_deterministic_and_a_feature_cache_changes_none(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine
) -> None:
    a, b = stored["rocket"], edited[("rocket", "combo")]
    first = _verify(a, b, cosine)
    assert _verify(a, b, cosine) == first
    cache = FeatureCache()
    c = cosine(a, b)
    extracting = verify_images(_view(a), _view(b), cosine=c, cache=cache)
    assert len(cache) == 2
    reusing = verify_images(_view(a), _view(b), cosine=c, cache=cache)
    assert len(cache) == 2  # both sides' features came from the cache
    assert extracting == reusing == first


def test_rejects_bad_inputs(stored: dict[str, np.ndarray]) -> None:
    a = stored["coffee"]
    pair = phash_pair(a)
    with pytest.raises(ValueError):
        ImageView(a[:, :, 0], pair)
    with pytest.raises(ValueError):
        ImageView(a, pair, photo_rgb=a.astype(np.float32))
    with pytest.raises(ValueError):
        ImageView(a[:0], pair)
    with pytest.raises(ValueError):
        ImageView(None, (0, 0))
    with pytest.raises(ValueError):
        verify_images(_view(a), _view(a), cosine=float("nan"))


# --- stored features and stored JPEGs give the same evidence --------------------------------------


@pytest.mark.parametrize("edit", ["watermark", "mirror", "crop25", "combo"])
def test_stored_features_give_the_same_evidence(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray], cosine: Cosine, edit: str
) -> None:
    a, b = stored["astronaut"], edited[("astronaut", edit)]
    sift_a = sift_from_bytes(sift_to_bytes(extract_sift(a)))
    sift_b = sift_from_bytes(sift_to_bytes(extract_sift(b)))
    assert sift_a is not None and sift_b is not None
    hashes, c = (phash_pair(a), phash_pair(b)), cosine(a, b)

    extracting_cache = FeatureCache()
    extracted = measure_images(
        ImageView(a, hashes[0]), ImageView(b, hashes[1]), cosine=c, cache=extracting_cache
    )
    assert len(extracting_cache) == 2
    given_cache = FeatureCache()
    given = measure_images(
        ImageView(a, hashes[0], sift=sift_a),
        ImageView(b, hashes[1], sift=sift_b),
        cosine=c,
        cache=given_cache,
    )
    assert given == extracted
    assert len(given_cache) == 0  # nothing was extracted


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
    lazy = measure_images(lazy_a, lazy_b, cosine=c)
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


def test_a_page_judged_by_its_slot_decides_under_fused_v12_only() -> None:
    # The evidence of two pages around different photos whose framed "photos" were one page panel:
    # the candidate cosine is the panels' (1.0) and the pages align well, so fused-v3's model, reused
    # by fused-v9, scores the pair a duplicate despite the slot's disagreement; fused-v12 lets the
    # slot decide.
    page = Evidence(
        12, False, 1.0, 144, False, 0.926, sift_matches=150, overlap=1.0, mismatch=0.4, compared=SHARED_PAGE
    )
    assert decide(page, FUSED_V9).is_duplicate
    verdict = decide(page, FUSED_V12)
    assert not verdict.is_duplicate and verdict.score == 0.0 and verdict.confidence == 1.0
    assert verdict.verifier_version == "fused-v12"
    # Any other comparison is still the fusion's to decide.
    whole = dataclasses.replace(page, compared="full/full")
    assert decide(whole, FUSED_V12).is_duplicate == decide(whole, FUSED_V9).is_duplicate
