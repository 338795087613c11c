"""fused-v11's grey-level matching before aligned SSIM (issue 11, combo copies): real photos in, SSIM
with and without imgdup_core.similarity.match_levels out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import brightness, contrast, jpeg, pipeline_copy
from PIL import Image

from imgdup_core.gray import working_gray
from imgdup_core.hashing import phash_pair
from imgdup_core.similarity import aligned_ssim, match_levels
from imgdup_core.verifier_config import FUSED_V10, FUSED_V11, VERIFIERS, VerifierConfig
from imgdup_core.verify import ImageView, verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _ssim(a: np.ndarray, b: np.ndarray, config: VerifierConfig) -> float:
    """Aligned SSIM of two stored copies of one size, b laid on a as it is (identity homography)."""
    assert a.shape == b.shape
    measured = aligned_ssim(working_gray(a, config), working_gray(b, config), np.eye(3), config)
    assert measured is not None
    return measured[0]


def _relit(rgb: np.ndarray) -> np.ndarray:
    """What a combo's photometric part does: strong contrast up, brightness down, a low-quality JPEG."""
    return pipeline_copy(jpeg(brightness(contrast(rgb, 1.7), 0.6), 45))


def test_the_flag_is_fused_v10_plus_level_matching_only() -> None:
    assert VERIFIERS["fused-v11"] is FUSED_V11 and FUSED_V11.ssim_match_levels
    assert not FUSED_V10.ssim_match_levels
    assert not any(config.ssim_match_levels for name, config in VERIFIERS.items() if name != "fused-v11")
    # Measures as fused-v10 does but for the flag.
    unflagged = dataclasses.replace(FUSED_V11, version="x", ssim_match_levels=False)
    assert unflagged == dataclasses.replace(FUSED_V10, version="x", fusion=FUSED_V11.fusion)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_a_relit_copy_scores_higher_ssim_with_levels_matched(
    photos: dict[str, np.ndarray], stored: dict[str, np.ndarray], name: str
) -> None:
    copy = _relit(photos[name])
    off, on = _ssim(stored[name], copy, FUSED_V10), _ssim(stored[name], copy, FUSED_V11)
    assert on > off + 0.03, (off, on)
    assert on > 0.85, on


@pytest.mark.parametrize(
    ("one", "other"), [("astronaut", "coffee"), ("chelsea", "rocket"), ("coffee", "chelsea")]
)
def test_two_different_photos_do_not_gain(stored: dict[str, np.ndarray], one: str, other: str) -> None:
    a = stored[one]
    b = np.asarray(Image.fromarray(stored[other]).resize((a.shape[1], a.shape[0]), Image.Resampling.LANCZOS))
    off, on = _ssim(a, b, FUSED_V10), _ssim(a, b, FUSED_V11)
    # Measured: 0.10 -> 0.08, 0.18 -> 0.22, 0.18 -> 0.11: matching levels makes up no structure.
    assert on < 0.35 and on < off + 0.1, (off, on)


def test_match_levels_moves_mean_and_spread_over_the_overlap_only() -> None:
    rng = np.random.default_rng(7)
    ref = rng.uniform(40, 200, (64, 64)).astype(np.float32)
    warped = (ref * 0.5 + 30).astype(np.float32)
    valid = np.zeros(ref.shape, bool)
    valid[8:56, 8:56] = True
    matched = match_levels(warped, ref, valid)
    assert np.allclose(matched[valid], ref[valid], atol=0.5)
    # A flat side has no spread to match: only its mean moves, no texture is made up.
    flat = np.full(ref.shape, 90.0, np.float32)
    moved = match_levels(flat, ref, valid)
    assert float(moved.std()) < 1e-3 and abs(float(moved[valid].mean()) - float(ref[valid].mean())) < 0.5


def test_the_verifier_measures_a_relit_copy_closer_with_fused_v11(
    photos: dict[str, np.ndarray], stored: dict[str, np.ndarray], cosine: Cosine
) -> None:
    copy = _relit(photos["chelsea"])
    views = [ImageView(rgb=rgb, phash=phash_pair(rgb)) for rgb in (stored["chelsea"], copy)]
    similarity = cosine(stored["chelsea"], copy)
    before = verify_images(*views, cosine=similarity, config=FUSED_V10).evidence
    after = verify_images(*views, cosine=similarity, config=FUSED_V11).evidence
    assert before.ssim is not None and after.ssim is not None and before.sift_inliers > 50
    assert after.ssim > before.ssim + 0.03
    # The disagreement is measured on the pixels as they are: the flag moves the score only.
    assert after.mismatch == before.mismatch and after.sift_inliers == before.sift_inliers
