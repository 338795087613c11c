"""A candidate pair (CandidatePairV1) -> its verdict and whole evidence stored on the pair's row, and the
verified duplicate (VerifiedPairV1) to hand to the clusterer, a review (PairReviewV1) of a rejected pair
the clusterer must look at again (a clustered pair rejected on re-verification), or None. No Kafka."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.analysis.batching import RunCpu
from imgdup.blobs.base import BlobStore
from imgdup.store import images, pairs
from imgdup.store.transient import retry_transient
from imgdup_core.evidence import Verdict
from imgdup_core.sift import FeatureCache, flat_from_bytes, sift_from_bytes
from imgdup_core.verifier_config import default_verifier_for
from imgdup_core.verify import ImageView, VerifierConfig, box_or_compute, verify_images
from schemas import CandidatePairV1, EvidenceV1, PairReviewV1, VerifiedPairV1, VersionsV1


@dataclass(frozen=True)
class VerifyContext:
    """What verification needs from the world; the worker builds it from its runtime."""

    pool: AsyncConnectionPool
    run_cpu: RunCpu
    embedding_model: str
    blobs: BlobStore  # the stored copies and features (rows keep their addresses)
    # The verifier model the worker runs (imgdup.verifiers, IMGDUP_VERIFIER_VERSION).
    config: VerifierConfig = field(default_factory=lambda: default_verifier_for("sscd"))
    # Features of images indexed without stored ones are extracted once per process, not per pair.
    cache: FeatureCache = field(default_factory=FeatureCache)


def evidence_of(verdict: Verdict) -> EvidenceV1:
    """The public evidence of a verdict: the core's measurements under the same names, and the
    fused score."""
    return EvidenceV1(**dataclasses.asdict(verdict.evidence), score=verdict.score)


def _view(image: images.ImageForVerification, config: VerifierConfig) -> ImageView:
    # Features stored at indexing save extracting them again for every pair, and the stored
    # copies are decoded only for a pair that aligns; images indexed before features were
    # stored (or under other SIFT settings) get them extracted here.
    return ImageView(
        rgb=None,
        phash=(image.phash, image.phash_mirrored),
        jpeg=image.jpeg,
        photo_jpeg=image.photo_jpeg or None,
        # None when stored under other extraction settings (another verifier version): extracted.
        sift=sift_from_bytes(image.sift, config) if image.sift else None,
        photo_sift=sift_from_bytes(image.photo_sift, config) if image.photo_sift else None,
        # A flat picture's second features (migration 016): None where not stored, extracted if needed.
        flat_sift=flat_from_bytes(image.flat_sift, config) if image.flat_sift else None,
        photo_flat_sift=flat_from_bytes(image.photo_flat_sift, config) if image.photo_flat_sift else None,
        # The box the indexer found: the page rule (fused-v8 and later) does not run the frame
        # finder again per pair. Rows of before migration 013 have none: computed from the copy.
        box=box_or_compute(image.photo_box_share) if image.photo_jpeg else None,
    )


def _review(pair_id: str) -> PairReviewV1:
    return PairReviewV1(pair_id=pair_id, cause="verifier", requested_at=datetime.now(UTC))


async def _review_if_needed(ctx: VerifyContext, pair_id: str) -> PairReviewV1 | None:
    if not await retry_transient("verifier.load", pairs.rejected_needs_review, ctx.pool, pair_id):
        return None
    return _review(pair_id)


async def verify_candidate(
    ctx: VerifyContext, candidate: CandidatePairV1
) -> VerifiedPairV1 | PairReviewV1 | None:
    """Decide one candidate; safe to repeat: a pair decided before is handed on again only when it
    is a duplicate not yet clustered, or a rejected pair still an edge of a cluster (a crash between
    the verdict and its hand-over)."""
    status, a, b = await retry_transient(
        "verifier.load",
        images.load_for_verification,
        ctx.pool,
        candidate.a.image_id,
        candidate.b.image_id,
        ctx.blobs,
    )
    if status == "rejected":  # decided before: a redelivery or replay changes nothing ...
        return await _review_if_needed(ctx, candidate.pair_id)  # ... but an edge must go
    if status in ("clustered", "missing"):
        return None  # already decided and handed on: a redelivery or replay changes nothing
    if status == "verified":  # decided before a crash, not yet handed on: hand it on again
        return await retry_transient("verifier.load", pairs.verified_pair, ctx.pool, candidate.pair_id)
    if a is None or b is None:
        raise LookupError(f"pair {candidate.pair_id}: an image is not indexed")
    if a.pixel_sha256 == b.pixel_sha256:
        # Same decoded pixels: no need for the heavy methods.
        row = pairs.VerdictRow(
            pair_id=candidate.pair_id,
            is_duplicate=True,
            confidence=1.0,
            evidence=EvidenceV1(
                phash_distance=0,
                phash_mirrored=False,
                embedding_cosine=candidate.cosine,
                sift_inliers=0,
                sift_mirrored=False,
                ssim=None,
                exact=True,
                score=1.0,
                compared="full/full",
            ),
            versions=VersionsV1(embedding_model=ctx.embedding_model, verifier=ctx.config.version),
        )
    else:
        started = time.perf_counter()
        verdict = await ctx.run_cpu(
            lambda: verify_images(
                _view(a, ctx.config),
                _view(b, ctx.config),
                cosine=candidate.cosine,
                config=ctx.config,
                cache=ctx.cache,
            )
        )
        metrics.STAGE_SECONDS.labels("verify").observe(time.perf_counter() - started)
        row = pairs.VerdictRow(
            pair_id=candidate.pair_id,
            is_duplicate=verdict.is_duplicate,
            confidence=verdict.confidence,
            evidence=evidence_of(verdict),
            versions=VersionsV1(embedding_model=ctx.embedding_model, verifier=verdict.verifier_version),
        )
    metrics.VERDICTS.labels("duplicate" if row.is_duplicate else "distinct").inc()
    saved = await retry_transient("verifier.save", pairs.record_verdict, ctx.pool, row)
    if saved.verified is None and not row.is_duplicate:
        if saved.needs_review is None:  # decided before (a redelivery): ask
            return await _review_if_needed(ctx, candidate.pair_id)
        if saved.needs_review:  # rejected now, still an edge of a cluster or moderated
            return _review(candidate.pair_id)
    return saved.verified
