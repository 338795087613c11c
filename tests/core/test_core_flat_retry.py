"""Tests for fused-v17's second alignment of flat pictures (imgdup_core.geometry.align_flat_again): a pair
of stored pictures, one with few keypoints at the default contrast, in; whether it aligns (and so whether a
copy of a small, blurred or flat photo is found) out (issue 11's leave-one-domain-out misses)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from core_images import crop, pipeline_copy, thumbnail, view_of

from imgdup_core.geometry import Geometry, align_flat_again, best_geometry
from imgdup_core.gray import working_gray
from imgdup_core.sift import FeatureCache, SiftFeatures, extract_features, extract_flat_features
from imgdup_core.verifier_config import FUSED_V16, FUSED_V17, FUSED_V18, FUSED_V19, FUSED_V22, VerifierConfig
from imgdup_core.verify import verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _features(rgb: np.ndarray) -> SiftFeatures:
    return extract_features(working_gray(rgb, FUSED_V17), FUSED_V17)


def _small_clock(photos: dict[str, np.ndarray]) -> np.ndarray:
    """scikit-image's motion-blurred clock as a 160-pixel listing thumbnail: 4 keypoints at 0.04."""
    return thumbnail(photos["clock"], 160)


def _blurred_rocket(photos: dict[str, np.ndarray]) -> np.ndarray:
    """The rocket photo out of focus (Gaussian blur, sigma 3): 34 keypoints at 0.04."""
    return cv2.GaussianBlur(photos["rocket"], (0, 0), 3.0)


FLAT_PHOTOS = {"small_clock": _small_clock, "blurred_rocket": _blurred_rocket}


@pytest.mark.parametrize(
    "config",
    [FUSED_V17, FUSED_V18, FUSED_V19, FUSED_V22],
    ids=["fused-v17", "fused-v18", "fused-v19", "fused-v22"],
)
@pytest.mark.parametrize("photo", list(FLAT_PHOTOS.values()), ids=list(FLAT_PHOTOS))
def test_a_cropped_copy_of_a_flat_photo_aligns_the_second_time(
    photos: dict[str, np.ndarray],
    cosine: Cosine,
    photo: Callable[[dict[str, np.ndarray]], np.ndarray],
    config: VerifierConfig,
) -> None:
    # Cropped 15 % a side, the copy keeps too few of the photo's few keypoints to align: fused-v16 rejects it
    # (0 inliers; cosine 0.67-0.83 and pHash 16-24 stay outside the unaligned rule). Extracted again at the
    # low contrast, the flat picture aligns with its copy and the fusion accepts it.
    original = pipeline_copy(photo(photos))
    copy = pipeline_copy(crop(photo(photos), 0.15))
    assert len(_features(original).points) < FUSED_V17.flat_retry_keypoints
    views, similarity = (view_of(original), view_of(copy)), cosine(original, copy)
    before = verify_images(*views, cosine=similarity, config=FUSED_V16)
    assert before.evidence.sift_inliers == 0 and not before.is_duplicate, before
    assert similarity >= config.flat_retry_min_cosine
    after = verify_images(*views, cosine=similarity, config=config)
    assert after.is_duplicate and after.evidence.ssim is not None, after
    assert after.evidence.sift_inliers >= 10 and after.evidence.overlap > 0.95, after
    assert after.score > config.fusion.threshold, after  # the fusion's verdict, not a rule's
    # Under fused-v18's cosine gate the same pair is not aligned again: rejected, as by fused-v16.
    gated = dataclasses.replace(config, flat_retry_min_cosine=similarity + 0.01)
    assert not verify_images(*views, cosine=similarity, config=gated).is_duplicate


@pytest.mark.parametrize(
    ("one", "other"), [("small_clock", "blurred_rocket"), ("blurred_rocket", "small_clock")]
)
def test_two_different_flat_photos_stay_different(
    photos: dict[str, np.ndarray], cosine: Cosine, one: str, other: str
) -> None:
    a, b = pipeline_copy(FLAT_PHOTOS[one](photos)), pipeline_copy(FLAT_PHOTOS[other](photos))
    for config in (FUSED_V17, FUSED_V18, FUSED_V19, FUSED_V22):
        verdict = verify_images(view_of(a), view_of(b), cosine=cosine(a, b), config=config)
        assert not verdict.is_duplicate, verdict


@pytest.mark.parametrize(("one", "other"), [("rocket", "camera"), ("rocket", "moon"), ("camera", "moon")])
def test_flat_regions_of_different_photos_stay_different(
    photos: dict[str, np.ndarray], cosine: Cosine, one: str, other: str
) -> None:
    # The unaligned rule's flat regions (tests/core/test_core_unaligned_rule.py), aligned again: still apart.
    a = pipeline_copy(photos[one][:200, :300])
    b = pipeline_copy(photos[other][:200, :300])
    for config in (FUSED_V17, FUSED_V18, FUSED_V19, FUSED_V22):
        verdict = verify_images(view_of(a), view_of(b), cosine=cosine(a, b), config=config)
        assert not verdict.is_duplicate, verdict


class _Counted:
    """A flat side's features, counting how often they were asked for."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb, self.calls = rgb, 0

    def __call__(self) -> SiftFeatures:
        self.calls += 1
        return extract_flat_features(working_gray(self.rgb, FUSED_V17), FUSED_V17)


def _align_again(
    a: np.ndarray, b: np.ndarray, minimum: int
) -> tuple[Geometry | None, Geometry | None, _Counted, _Counted]:
    config = dataclasses.replace(FUSED_V17, flat_retry_keypoints=minimum)
    feats_a, feats_b = _features(a), _features(b)
    first = best_geometry(
        feats_a, feats_b, (feats_a.height, feats_a.width), prefer_mirrored=False, config=config
    )
    flat_a, flat_b = _Counted(a), _Counted(b)
    again = align_flat_again(
        first,
        feats_a,
        feats_b,
        flat_a=flat_a,
        flat_b=flat_b,
        prefer_mirrored=False,
        cosine=1.0,
        config=config,
    )
    return first, again, flat_a, flat_b


def test_only_the_flat_picture_of_an_unaligned_pair_is_extracted_again(photos: dict[str, np.ndarray]) -> None:
    clock = pipeline_copy(_small_clock(photos))
    textured = pipeline_copy(photos["astronaut"])
    first, again, flat_a, flat_b = _align_again(clock, textured, FUSED_V17.flat_retry_keypoints)
    assert first is None or not first.plausible
    assert (flat_a.calls, flat_b.calls) == (1, 0)
    assert again is first  # nothing plausible the second time either: the first answer stands


def test_an_aligned_pair_or_a_zero_minimum_is_left_alone(photos: dict[str, np.ndarray]) -> None:
    original = pipeline_copy(photos["astronaut"])
    copy = pipeline_copy(crop(photos["astronaut"], 0.1))
    first, again, flat_a, flat_b = _align_again(original, copy, 10_000)
    assert first is not None and first.plausible and again is first
    assert (flat_a.calls, flat_b.calls) == (0, 0)
    clock = pipeline_copy(_small_clock(photos))
    first, again, flat_a, flat_b = _align_again(clock, pipeline_copy(crop(_small_clock(photos), 0.15)), 0)
    assert again is first and (flat_a.calls, flat_b.calls) == (0, 0)


def test_the_feature_cache_keeps_flat_features_apart(photos: dict[str, np.ndarray]) -> None:
    gray = working_gray(pipeline_copy(_small_clock(photos)), FUSED_V17)
    cache = FeatureCache()
    one_pass = cache.features(gray, FUSED_V17)
    flat = cache.features(gray, FUSED_V17, flat=True)
    assert len(cache) == 2 and len(flat.points) > len(one_pass.points)
    assert cache.features(gray, FUSED_V17, flat=True) is flat
    assert np.array_equal(flat.descriptors, extract_flat_features(gray, FUSED_V17).descriptors)


def test_half_size_flat_features_are_in_the_working_copys_coordinates(photos: dict[str, np.ndarray]) -> None:
    gray = working_gray(pipeline_copy(_blurred_rocket(photos)), FUSED_V18)
    half, full = extract_flat_features(gray, FUSED_V18), extract_flat_features(gray, FUSED_V17)
    assert (half.width, half.height) == (full.width, full.height) == (gray.shape[1], gray.shape[0])
    assert len(half.points) > 0 and not half.points.flags.writeable
    assert half.points[:, 0].max() < gray.shape[1] and half.points[:, 1].max() < gray.shape[0]
    # The strongest keypoints of the half-size pass sit where the full-size pass found keypoints too.
    nearest = np.linalg.norm(half.points[:, None, :] - full.points[None, :, :], axis=2).min(axis=1)
    assert float(np.median(nearest)) < 3.0
    cache = FeatureCache()
    assert cache.features(gray, FUSED_V18, flat=True) is not cache.features(gray, FUSED_V17, flat=True)
    assert len(cache) == 2
