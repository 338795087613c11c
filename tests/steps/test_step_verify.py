"""imgdup.steps.verify on a real Postgres, without Kafka: a candidate pair in; its verdict and whole
evidence on the pair's row, and the verified pair to hand on (or None) out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import psycopg
import pytest
from helpers.fakes import Web, run_inline
from helpers.photos import jpeg, photo
from PIL import ImageOps
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup.steps.index import IndexContext, index_ad
from imgdup.steps.verify import VerifyContext, verify_candidate
from imgdup.store.pairs import evidence_from_row
from schemas import CandidatePairV1, PairReviewV1
from tests.helpers.ads import one_image_event


async def _candidate(ctx: IndexContext, web: Web, first: bytes, second: bytes) -> CandidatePairV1:
    web.files["https://cdn.example/1.jpg"] = first
    web.files["https://cdn.example/2.jpg"] = second
    any_neighbour = replace(ctx, min_score=-1.0)  # even an unrelated photo becomes a candidate
    await index_ad(any_neighbour, one_image_event(1, "https://cdn.example/1.jpg"))
    result = await index_ad(any_neighbour, one_image_event(2, "https://cdn.example/2.jpg"))
    [candidate] = result.candidates
    return candidate


def _pair_row(dsn: str, pair_id: str) -> dict[str, object]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM duplicates WHERE pair_id = %s", (pair_id,)).fetchone()
    assert row is not None
    return row


async def test_a_mirrored_copy_is_verified_and_its_evidence_is_the_row(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    original = photo("rocket")
    candidate = await _candidate(index_context, web, jpeg(original), jpeg(ImageOps.mirror(original)))
    ctx = VerifyContext(
        pool=index_context.pool, run_cpu=run_inline, embedding_model="model-v1", blobs=index_context.blobs
    )

    verified = await verify_candidate(ctx, candidate)

    assert verified is not None and verified.pair_id == candidate.pair_id
    assert verified.evidence.sift_mirrored and verified.evidence.sift_inliers > 30
    assert verified.evidence.embedding_cosine == pytest.approx(candidate.cosine, abs=1e-6)  # a `real` column
    assert verified.versions.embedding_model == "model-v1"
    row = _pair_row(clean_db, candidate.pair_id)
    assert row["status"] == "verified"
    # One evidence shape: what was published is what the row says, field by field.
    assert evidence_from_row(row) == verified.evidence
    # A redelivery before the clusterer took it hands the same pair on again.
    assert await verify_candidate(ctx, candidate) == verified


async def test_identical_pixels_are_decided_without_the_heavy_methods(
    index_context: IndexContext, web: Web
) -> None:
    same = jpeg(photo("astronaut"))
    candidate = await _candidate(index_context, web, same, same)
    ctx = VerifyContext(
        pool=index_context.pool, run_cpu=run_inline, embedding_model="model-v1", blobs=index_context.blobs
    )

    verified = await verify_candidate(ctx, candidate)

    assert verified is not None
    assert verified.evidence.exact and verified.confidence == 1.0
    assert verified.evidence.compared == "full/full"


async def test_a_different_photo_is_rejected_and_a_redelivery_changes_nothing(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    candidate = await _candidate(index_context, web, jpeg(photo("coffee")), jpeg(photo("chelsea")))
    ctx = VerifyContext(
        pool=index_context.pool, run_cpu=run_inline, embedding_model="model-v1", blobs=index_context.blobs
    )

    assert await verify_candidate(ctx, candidate) is None
    row = _pair_row(clean_db, candidate.pair_id)
    assert (row["status"], row["is_duplicate"]) == ("rejected", False)
    assert row["score"] is not None and row["verifier_version"]
    assert await verify_candidate(ctx, candidate) is None
    assert _pair_row(clean_db, candidate.pair_id)["decided_at"] == row["decided_at"]


async def test_the_configured_verifier_version_decides_and_is_recorded(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    """IMGDUP_VERIFIER_VERSION reaches the step: fused-v4 decides (with its own SIFT settings: the
    features stored under fused-v3's are extracted again) and the row names it."""
    from imgdup_core.verifier_config import FUSED_V4

    original = photo("rocket")
    candidate = await _candidate(index_context, web, jpeg(original), jpeg(ImageOps.mirror(original)))
    ctx = VerifyContext(
        pool=index_context.pool,
        run_cpu=run_inline,
        embedding_model="model-v1",
        blobs=index_context.blobs,
        config=FUSED_V4,
    )
    verified = await verify_candidate(ctx, candidate)
    assert verified is not None and verified.versions.verifier == "fused-v4"
    assert _pair_row(clean_db, candidate.pair_id)["verifier_version"] == "fused-v4"


class _CountingPool:
    """The pool, counting the connections taken: one per statement the step sends alone."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self.taken = 0

    def connection(self, *args: Any, **kwargs: Any) -> Any:
        self.taken += 1
        return self._pool.connection(*args, **kwargs)


async def test_a_rejected_candidate_costs_one_load_and_one_save(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    """The check whether a newly rejected pair needs the clusterer's review (still a cluster
    edge, or a moderator's verdict) rides on the verdict's UPDATE: no third statement (and its
    BEGIN and ROLLBACK) per rejected pair, 15 of 16 candidates on the throughput feed."""
    candidate = await _candidate(index_context, web, jpeg(photo("coffee")), jpeg(photo("chelsea")))
    counting = _CountingPool(index_context.pool)
    ctx = VerifyContext(
        pool=cast(AsyncConnectionPool, counting),
        run_cpu=run_inline,
        embedding_model="model-v1",
        blobs=index_context.blobs,
    )
    assert await verify_candidate(ctx, candidate) is None
    assert _pair_row(clean_db, candidate.pair_id)["status"] == "rejected"
    assert counting.taken == 2


async def test_a_clustered_pair_rejected_on_re_verification_goes_to_review(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    candidate = await _candidate(index_context, web, jpeg(photo("coffee")), jpeg(photo("chelsea")))
    # As a replay under a new verifier leaves it: back to 'candidate', still an edge of a cluster.
    with psycopg.connect(clean_db) as conn:
        conn.execute("UPDATE duplicates SET clustered_at = now() WHERE pair_id = %s", (candidate.pair_id,))
    ctx = VerifyContext(
        pool=index_context.pool, run_cpu=run_inline, embedding_model="model-v1", blobs=index_context.blobs
    )
    review = await verify_candidate(ctx, candidate)
    assert isinstance(review, PairReviewV1)
    assert (review.pair_id, review.cause) == (candidate.pair_id, "verifier")
    # A redelivery (decided before) still asks, and still hands it to review.
    again = await verify_candidate(ctx, candidate)
    assert isinstance(again, PairReviewV1) and again.pair_id == candidate.pair_id


async def test_a_moderated_pair_rejected_by_the_verifier_goes_to_review(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    """A moderator's verdict wins over the verifier's: the clusterer must look at the pair again."""
    candidate = await _candidate(index_context, web, jpeg(photo("coffee")), jpeg(photo("chelsea")))
    with psycopg.connect(clean_db) as conn:
        conn.execute(
            "INSERT INTO moderator_verdicts (pair_id, verdict, moderator) VALUES (%s, 'confirmed', 'ann')",
            (candidate.pair_id,),
        )
    ctx = VerifyContext(
        pool=index_context.pool, run_cpu=run_inline, embedding_model="model-v1", blobs=index_context.blobs
    )
    review = await verify_candidate(ctx, candidate)
    assert isinstance(review, PairReviewV1) and review.pair_id == candidate.pair_id
