"""Tests for fused-v24's parallax measure (imgdup_core.parallax.moved_share, Evidence.moved): two aligned
pictures in, the share of their disagreement that a local displacement explains out (issue 11: two views
of one scene scored like a copy under a heavy overlay in held-out folds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from core_images import EDITED_BASES, brightness, heavy_watermark, pipeline_copy, rotate, view_of
from skimage import data

from imgdup_core.evidence import Evidence
from imgdup_core.parallax import moved_share
from imgdup_core.slot import AlignedMaps
from imgdup_core.ssim import ssim_map
from imgdup_core.verifier_config import FUSED_V23, FUSED_V24, OverlayRule, ParallaxRule
from imgdup_core.verify import decide, is_spread_overlay, is_two_views, measure_images


def _maps(a: np.ndarray, b: np.ndarray) -> AlignedMaps:
    """Two float32 pictures taken as already aligned: the maps aligned_ssim builds, fully valid."""
    ones = np.ones(a.shape, bool)
    return AlignedMaps(a, b, ssim_map(a, b), ones, ones, ones, mismatch_ssim=0.3)


def _texture(seed: int = 7) -> np.ndarray:
    """A textured grey picture (smoothed noise, 0..255): every part of it is told apart by SSIM."""
    noise = np.random.default_rng(seed).uniform(0, 255, (160, 200)).astype(np.float32)
    smooth: np.ndarray = np.asarray(
        np.clip(
            0.5 * noise + 0.5 * np.roll(noise, 1, axis=1) + 0.25 * (np.roll(noise, 1, axis=0) - 128), 0, 255
        ),
        dtype=np.float32,
    )
    return smooth


def test_a_picture_moved_by_a_few_pixels_is_explained_by_the_displacement() -> None:
    a = _texture()
    moved = np.roll(a, (0, 3), axis=(0, 1))  # the whole picture 3 px to the right: parallax, one depth
    share = moved_share(_maps(a, moved))
    assert share > 0.8, share
    assert moved_share(_maps(a, a)) == 0.0  # nothing disagrees: nothing to explain


def test_a_patch_that_is_not_there_is_not_explained_by_any_displacement() -> None:
    a = _texture()
    b = a.copy()
    b[40:120, 50:150] = _texture(seed=99)[40:120, 50:150]  # a sticker or text over a third of it
    maps = _maps(a, b)
    assert float((maps.ssim_map < 0.3).mean()) > 0.15  # it disagrees there...
    assert moved_share(maps) < 0.02  # ...and no shift of b makes it agree


def test_two_views_of_one_scene_disagree_where_depth_moves_them() -> None:
    left, right, _ = data.stereo_motorcycle()
    a, b = pipeline_copy(left), pipeline_copy(right)
    evidence = measure_images(view_of(a), view_of(b), cosine=0.88, config=FUSED_V24)
    # They align on one plane (hundreds of inliers, a close pHash) and disagree in a third of the picture,
    # as a copy under a heavy overlay does; most of that agrees once moved by the local displacement.
    assert evidence.sift_inliers > 100 and evidence.phash_distance <= 8
    assert evidence.mismatch is not None and evidence.mismatch > 0.3
    assert evidence.moved is not None and evidence.moved > 0.18, evidence
    # Earlier verifiers do not measure it.
    assert measure_images(view_of(a), view_of(b), cosine=0.88, config=FUSED_V23).moved is None


@pytest.mark.parametrize("name", EDITED_BASES)
def test_an_edited_copy_has_nothing_a_displacement_explains(
    name: str, stored: dict[str, np.ndarray], photos: dict[str, np.ndarray]
) -> None:
    original = stored[name]
    for edit in (heavy_watermark, lambda rgb: rotate(rgb, 7), lambda rgb: brightness(rgb, 1.3)):
        copy = pipeline_copy(edit(photos[name]))
        evidence = measure_images(view_of(original), view_of(copy), cosine=0.9, config=FUSED_V24)
        assert evidence.ssim is not None, (name, evidence)
        # Measured only where the mismatch reaches the gate; where it is, under a tenth.
        if evidence.mismatch is not None and evidence.mismatch >= 0.15:
            assert evidence.moved is not None and evidence.moved < 0.1, (name, evidence)


def test_two_views_are_rejected_whatever_the_fusion_or_a_rule_says() -> None:
    # The motorcycle's stereo views as fused-v24 measures them (the broad pool's evidence).
    views = Evidence(
        4,
        False,
        0.88,
        197,
        False,
        0.47,
        sift_matches=361,
        overlap=0.99,
        mismatch=0.3,
        moved=0.255,
        compared="full/full",
        mismatch_evenness=0.9,
        coverage=0.92,
    )
    # Close enough in pHash, overlap and an even disagreement for the overlay rule to accept it...
    assert is_spread_overlay(views, OverlayRule()) and decide(views, FUSED_V23).is_duplicate
    # ...which the parallax rule overrides; with less of the disagreement explained, it stands.
    assert is_two_views(views, ParallaxRule())
    verdict = decide(views, FUSED_V24)
    assert not verdict.is_duplicate and verdict.score == 0.0
    copy = dataclasses.replace(views, moved=0.146)  # the most a train copy fused-v23 accepts reached
    assert not is_two_views(copy, ParallaxRule()) and decide(copy, FUSED_V24).is_duplicate
    unmeasured = dataclasses.replace(views, moved=None)
    assert not is_two_views(unmeasured, ParallaxRule()) and decide(unmeasured, FUSED_V24).is_duplicate
    unaligned = dataclasses.replace(views, ssim=None, sift_inliers=0)
    assert not is_two_views(unaligned, ParallaxRule())
