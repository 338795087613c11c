"""Tests for fused-v14's overlay rule (imgdup_core.verifier_config.OverlayRule,
imgdup_core.similarity.disagreement_evenness): aligned pairs in, whether an overlay spread over the
whole photo makes them one photo out (issue 11)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from core_images import EDITED_BASES, heavy_watermark, view_of
from skimage import data

from imgdup_core.similarity import disagreement_evenness
from imgdup_core.slot import AlignedMaps
from imgdup_core.verifier_config import FUSED_V12, FUSED_V14, OverlayRule
from imgdup_core.verify import decide, is_spread_overlay, verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _maps(disagree: np.ndarray) -> AlignedMaps:
    """Maps of a fully valid, fully textured 128 x 128 overlap whose SSIM is low exactly where
    `disagree` is set."""
    shape = disagree.shape
    ssim = np.where(disagree, 0.1, 0.9).astype(np.float32)
    ones = np.ones(shape, bool)
    zeros = np.zeros(shape, np.float32)
    return AlignedMaps(zeros, zeros, ssim, ones, ones, ones, mismatch_ssim=0.5)


def test_an_overlay_spread_over_the_picture_is_even_and_a_slot_is_not() -> None:
    tiled = np.zeros((128, 128), bool)
    tiled[::8] = True  # lines of text every 8 rows, across the whole picture
    assert disagreement_evenness(_maps(tiled)) == 1.0
    slot = np.zeros((128, 128), bool)
    slot[64:, :64] = True  # a page's photo slot: one quarter disagrees
    assert disagreement_evenness(_maps(slot)) == 0.25
    assert disagreement_evenness(_maps(np.zeros((128, 128), bool))) is None


@pytest.mark.parametrize("name", EDITED_BASES)
def test_a_photo_under_a_tiled_watermark_is_a_duplicate(
    name: str, stored: dict[str, np.ndarray], cosine: Cosine
) -> None:
    original = stored[name]
    copy = heavy_watermark(original, "SPRZEDAM  +48 600 100 200")
    verdict = verify_images(view_of(original), view_of(copy), cosine=cosine(original, copy), config=FUSED_V14)
    assert verdict.is_duplicate, verdict
    evidence = verdict.evidence
    assert evidence.mismatch_evenness is not None
    if not decide(evidence, FUSED_V12).is_duplicate:
        # The fusion alone rejects it (fused-v12's verdict on the same evidence): the rule decided.
        assert is_spread_overlay(evidence, OverlayRule()) and verdict.score == round(
            FUSED_V14.fusion.threshold, 6
        ), verdict


def test_the_rule_takes_a_copy_the_fusion_rejects(stored: dict[str, np.ndarray], cosine: Cosine) -> None:
    # The rocket under the tiled text: fused-v3's model (fused-v12's) scores it under its cut
    # (tests/core/test_core_verify.py KNOWN_MISSES); the disagreement is spread over the whole photo.
    original = stored["rocket"]
    copy = heavy_watermark(original)
    views = view_of(original), view_of(copy)
    before = verify_images(*views, cosine=cosine(original, copy), config=FUSED_V12)
    after = verify_images(*views, cosine=cosine(original, copy), config=FUSED_V14)
    assert not before.is_duplicate and after.is_duplicate, (before, after)
    assert before.evidence.mismatch_evenness is None  # fused-v12 does not measure it
    assert after.evidence.mismatch_evenness is not None and after.evidence.mismatch_evenness >= 0.6


@pytest.mark.parametrize(("a", "b"), [("astronaut", "coffee"), ("chelsea", "rocket"), ("camera", "moon")])
def test_different_photos_stay_different(a: str, b: str, cosine: Cosine) -> None:
    def rgb(name: str) -> np.ndarray:
        pixels = getattr(data, name)()
        return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels[:, :, :3]

    first, second = rgb(a), heavy_watermark(rgb(b))
    verdict = verify_images(view_of(first), view_of(second), cosine=cosine(first, second), config=FUSED_V14)
    assert not verdict.is_duplicate, verdict


def test_the_rule_never_overrides_a_page_slot() -> None:
    from imgdup_core.evidence import Evidence
    from imgdup_core.verify import PAGE_BOX, SHARED_PAGE

    even = Evidence(2, False, 0.5, 80, False, 0.7, overlap=1.0, mismatch=0.2, mismatch_evenness=0.9)
    assert is_spread_overlay(even, OverlayRule())
    for compared in (SHARED_PAGE, PAGE_BOX):
        assert not is_spread_overlay(dataclasses.replace(even, compared=compared), OverlayRule())
    assert not is_spread_overlay(dataclasses.replace(even, mismatch_evenness=0.4), OverlayRule())
    assert not is_spread_overlay(dataclasses.replace(even, phash_distance=12), OverlayRule())
    assert not is_spread_overlay(dataclasses.replace(even, mismatch=0.5), OverlayRule())
    assert not is_spread_overlay(dataclasses.replace(even, overlap=0.9), OverlayRule())
    assert decide(even, FUSED_V14).is_duplicate
