"""Tests for a flat picture's second features stored at indexing (imgdup_core.sift.stored_flat_features,
flat_to_bytes / flat_from_bytes; ImageView.flat_sift): a stored copy in; the features fused-v22's second
alignment reads instead of extracting them per pair out, the same as it would have extracted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import crop, pipeline_copy, thumbnail

import imgdup_core.sift
import imgdup_core.verify
from imgdup_core.gray import working_gray
from imgdup_core.hashing import phash_pair
from imgdup_core.sift import (
    SiftFeatures,
    extract_flat_features,
    extract_sift,
    flat_from_bytes,
    flat_to_bytes,
    sift_from_bytes,
    sift_to_bytes,
    stored_flat_features,
)
from imgdup_core.verifier_config import FUSED_V18, FUSED_V21, FUSED_V22
from imgdup_core.verify import ImageView, verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _stored(rgb: np.ndarray) -> tuple[SiftFeatures, SiftFeatures | None]:
    features = extract_sift(rgb, FUSED_V22)
    return features, stored_flat_features(working_gray(rgb, FUSED_V22), features, FUSED_V22)


def test_only_a_flat_picture_stores_second_features(photos: dict[str, np.ndarray]) -> None:
    clock = pipeline_copy(thumbnail(photos["clock"], 160))  # 4 keypoints at the default contrast
    features, flat = _stored(clock)
    assert len(features.points) < FUSED_V22.flat_retry_keypoints and flat is not None
    expected = extract_flat_features(working_gray(clock, FUSED_V22), FUSED_V22)
    assert np.array_equal(flat.points, expected.points)
    assert np.array_equal(flat.descriptors, expected.descriptors)
    assert len(flat.points) > len(features.points)
    textured = pipeline_copy(photos["astronaut"])
    assert _stored(textured)[1] is None
    # A verifier without the second alignment stores none, whatever the picture.
    assert stored_flat_features(working_gray(clock, FUSED_V21), features, FUSED_V21) is None


def test_flat_features_round_trip_and_are_never_read_as_the_first_ones(photos: dict[str, np.ndarray]) -> None:
    clock = pipeline_copy(thumbnail(photos["clock"], 160))
    _, flat = _stored(clock)
    assert flat is not None
    blob = flat_to_bytes(flat, FUSED_V22)
    back = flat_from_bytes(blob, FUSED_V22)
    assert back is not None and (back.width, back.height) == (flat.width, flat.height)
    assert np.array_equal(back.points, flat.points) and np.array_equal(back.descriptors, flat.descriptors)
    assert not back.points.flags.writeable
    # Made at another scale or contrast: not these features.
    assert flat_from_bytes(blob, dataclasses.replace(FUSED_V22, flat_retry_scale=1.0)) is None
    assert flat_from_bytes(blob, dataclasses.replace(FUSED_V22, sift_low_texture_contrast=0.02)) is None
    # Each reader refuses the other's blobs, and a cut blob.
    with pytest.raises(ValueError, match="unknown format"):
        sift_from_bytes(blob, FUSED_V22)
    with pytest.raises(ValueError, match="unknown format"):
        flat_from_bytes(sift_to_bytes(extract_sift(clock, FUSED_V22), FUSED_V22), FUSED_V22)
    with pytest.raises(ValueError, match="wrong length"):
        flat_from_bytes(blob[:-1], FUSED_V22)
    with pytest.raises(ValueError, match="truncated"):
        flat_from_bytes(blob[:10], FUSED_V22)


def test_verifying_with_stored_flat_features_extracts_nothing_and_decides_the_same(
    photos: dict[str, np.ndarray], cosine: Cosine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cropped copy of the blurred rocket (tests/core/test_core_flat_retry.py): aligned only the second time.
    import cv2

    rocket = cv2.GaussianBlur(photos["rocket"], (0, 0), 3.0)
    original, copy = pipeline_copy(rocket), pipeline_copy(crop(rocket, 0.15))
    similarity = cosine(original, copy)
    extracted = verify_images(
        ImageView(original, phash_pair(original)),
        ImageView(copy, phash_pair(copy)),
        cosine=similarity,
        config=FUSED_V22,
    )
    assert extracted.is_duplicate and extracted.evidence.sift_inliers > 0, extracted
    views = []
    for rgb in (original, copy):
        features, flat = _stored(rgb)
        views.append(ImageView(rgb, phash_pair(rgb), sift=features, flat_sift=flat))
    assert views[0].flat_sift is not None

    def refuse(*_: object) -> SiftFeatures:
        raise AssertionError("extracted per pair")

    monkeypatch.setattr(imgdup_core.sift, "extract_flat_features", refuse)  # a FeatureCache's
    monkeypatch.setattr(imgdup_core.verify, "extract_flat_features", refuse)  # the verifier's own
    with pytest.raises(AssertionError, match="extracted per pair"):  # the trap works
        verify_images(
            *(dataclasses.replace(v, flat_sift=None) for v in views), cosine=similarity, config=FUSED_V22
        )
    stored = verify_images(*views, cosine=similarity, config=FUSED_V22)
    assert stored == extracted
    # fused-v18 (no stored-flat settings difference: same scale and contrast) reads them too.
    assert verify_images(*views, cosine=similarity, config=FUSED_V18).is_duplicate
