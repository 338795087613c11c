"""Tests for fused-v16's unaligned rule (imgdup_core.verifier_config.UnalignedRule): comparisons in which
nothing aligned in, whether a close embedding and pHash make them duplicates out (issue 11's flat photos)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from core_images import SKY_EDITS, pipeline_copy, watermark

from imgdup_core.evidence import Evidence
from imgdup_core.hashing import phash_pair
from imgdup_core.verifier_config import FUSED_V15, FUSED_V16, UnalignedRule
from imgdup_core.verify import ImageView, decide, is_unaligned_copy, verify_images

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _view(rgb: np.ndarray) -> ImageView:
    return ImageView(rgb, phash_pair(rgb))


def _sky(photos: dict[str, np.ndarray]) -> np.ndarray:
    """The rocket photo's sky (its top 200 rows): ~100 SIFT keypoints at the default contrast."""
    return photos["rocket"][:200]


FLAT_EDITS = {**SKY_EDITS, "watermark": watermark}


@pytest.mark.parametrize("edit", list(FLAT_EDITS.values()), ids=list(FLAT_EDITS))
def test_a_flat_sky_copy_nothing_aligns_is_a_duplicate(
    photos: dict[str, np.ndarray], cosine: Cosine, edit: Callable[[np.ndarray], np.ndarray]
) -> None:
    # Darkened, flattened or captioned, the sky's copy keeps no keypoint that matches: fused-v15 (fused-v3's
    # model, whose best unaligned score is under its threshold) rejects it whatever the cosine.
    original, copy = pipeline_copy(_sky(photos)), pipeline_copy(edit(_sky(photos)))
    views, similarity = (_view(original), _view(copy)), cosine(original, copy)
    before = verify_images(*views, cosine=similarity, config=FUSED_V15)
    assert before.evidence.ssim is None and not before.is_duplicate, before
    after = verify_images(*views, cosine=similarity, config=FUSED_V16)
    assert after.is_duplicate and is_unaligned_copy(after.evidence, UnalignedRule()), after
    assert after.score == round(FUSED_V16.fusion.threshold, 6) and after.confidence == 0.5, after


@pytest.mark.parametrize(
    ("one", "other"),
    [("rocket", "camera"), ("rocket", "moon"), ("camera", "moon")],
)
def test_two_different_flat_photos_stay_different(
    photos: dict[str, np.ndarray], cosine: Cosine, one: str, other: str
) -> None:
    # Flat regions of different photos (a sky, a studio's grey backdrop, the moon's plain): their pHash or
    # their embedding tells them apart, even where nothing aligns.
    a = pipeline_copy(photos[one][:200, :300])
    b = pipeline_copy(photos[other][:200, :300])
    verdict = verify_images(_view(a), _view(b), cosine=cosine(a, b), config=FUSED_V16)
    assert not verdict.is_duplicate, verdict
    assert not is_unaligned_copy(verdict.evidence, UnalignedRule()), verdict


def test_each_bound_of_the_rule_holds() -> None:
    rule = UnalignedRule()
    flat = Evidence(rule.max_phash, False, rule.min_cosine, 0, False, None)
    assert is_unaligned_copy(flat, rule) and decide(flat, FUSED_V16).is_duplicate
    for off in (
        Evidence(rule.max_phash + 1, False, 0.99, 0, False, None),  # pHash too far
        Evidence(0, False, rule.min_cosine - 0.01, 0, False, None),  # embedding too far
        Evidence(0, False, 0.99, 0, False, None, compared="photo/full"),  # a framed photo: not the rule's
        Evidence(0, False, 0.99, 0, False, None, compared="slot/slot"),  # a page's slot decides
    ):
        assert not is_unaligned_copy(off, rule), off
        assert not decide(off, FUSED_V16).is_duplicate, off
    # An aligned comparison is the fusion's and the aligned rules' to judge, not this one's.
    aligned = Evidence(0, False, 0.99, 12, False, 0.2, overlap=0.9, mismatch=0.6)
    assert not is_unaligned_copy(aligned, rule)
