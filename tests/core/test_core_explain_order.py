"""imgdup_core.explain draws the alignment the verdict measured, whichever image of the pair comes
first: the verifier measures a pair in its content order (imgdup_core.verify), the admin page
passes the pair's image_a and image_b."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from core_images import EDITS, pipeline_copy

from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.explain import Explanation, Side, explain_pair
from imgdup_core.hashing import phash_pair
from imgdup_core.verify import ImageView, extract_sift, measure_images, sift_to_bytes

Cosine = Callable[[np.ndarray, np.ndarray], float]


def _stored(upload: np.ndarray) -> tuple[Side, ImageView]:
    """One upload as the explanation route and the verifier agent read it back."""
    jpeg = storage_jpeg(upload)
    features = extract_sift(load_rgb(jpeg))
    hashes = phash_pair(upload)
    return (
        Side(jpeg=jpeg, sift=sift_to_bytes(features), phash=hashes),
        ImageView(None, hashes, jpeg=jpeg, sift=features),
    )


def _alignment_error(explanation: Explanation, rgb_a: np.ndarray, rgb_b: np.ndarray) -> float:
    """Median distance (a's copy pixels) between a's matched points and b's mapped by the
    homography (b mirrored first when the explanation says so)."""
    assert explanation.homography is not None
    (ha, wa), (hb, wb) = rgb_a.shape[:2], rgb_b.shape[:2]
    m = np.array(explanation.matches, dtype=np.float64)
    xb, yb = m[:, 2] * wb, m[:, 3] * hb
    if explanation.mirrored:
        xb = (wb - 1) - xb
    mapped = np.stack([xb, yb, np.ones_like(xb)]).T @ explanation.homography.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    return float(np.median(np.hypot(mapped[:, 0] - m[:, 0] * wa, mapped[:, 1] - m[:, 1] * ha)))


@pytest.mark.parametrize(
    ("name", "edit"), [("rocket", "combo"), ("coffee", "rotate10"), ("astronaut", "crop25")]
)
def test_the_explanation_draws_the_measured_alignment_in_either_order(
    photos: dict[str, np.ndarray], cosine: Cosine, name: str, edit: str
) -> None:
    original, copy = photos[name], EDITS[edit](photos[name])
    c = cosine(pipeline_copy(original), pipeline_copy(copy))
    for first, second in ((original, copy), (copy, original)):
        (side_a, view_a), (side_b, view_b) = _stored(first), _stored(second)
        evidence = measure_images(view_a, view_b, cosine=c)
        explanation, rgb_a, rgb_b = explain_pair(
            side_a,
            side_b,
            compared=evidence.compared,
            prefer_mirrored=evidence.sift_mirrored or evidence.phash_mirrored,
        )
        assert explanation.aligned and explanation.inliers == evidence.sift_inliers, (edit, evidence)
        assert explanation.mirrored == evidence.sift_mirrored
        # Lines join the same scene point, and the overlay maps b onto a.
        assert _alignment_error(explanation, rgb_a, rgb_b) < 3.0, edit
