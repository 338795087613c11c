"""Consumes agents.clusterer.decode_input: the clusterer's one input topic carries verified pairs and pair
reviews; anything else is a bad message (dead-lettered, never retried)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.clusterer import decode_input
from schemas import EvidenceV1, ImageRef, PairReviewV1, VerifiedPairV1, VersionsV1
from schemas.wire import encode
from streams.policy import MessageRejected

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_verified_pair_and_a_review_decode_to_their_models() -> None:
    verified = VerifiedPairV1(
        pair_id="p1",
        a=ImageRef(image_id="a", ad_id=1),
        b=ImageRef(image_id="b", ad_id=2),
        confidence=0.9,
        evidence=EvidenceV1(
            phash_distance=1,
            phash_mirrored=False,
            embedding_cosine=0.9,
            sift_inliers=50,
            sift_mirrored=False,
            ssim=0.8,
        ),
        versions=VersionsV1(embedding_model="m", verifier="v"),
        verified_at=WHEN,
    )
    review = PairReviewV1(pair_id="p1", cause="moderator", requested_at=WHEN)
    assert decode_input(encode(verified)) == verified
    assert decode_input(encode(review)) == review


@pytest.mark.parametrize("value", [b"", b"{}", b'{"type": "pair_review", "pair_id": "p"}', b"not json"])
def test_anything_else_is_rejected(value: bytes) -> None:
    with pytest.raises(MessageRejected) as rejected:
        decode_input(value)
    assert rejected.value.reason == "invalid_verified_pair"
