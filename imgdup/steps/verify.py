"""A candidate pair (CandidatePairV1) -> its verdict and whole evidence stored on the pair's row, and the
verified duplicate (VerifiedPairV1) to hand to the clusterer, or None. No Kafka."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.analysis.batching import RunCpu
from imgdup.store import images, pairs
from imgdup.store.transient import retry_transient
from imgdup_core.evidence import Verdict
from imgdup_core.sift import FeatureCache, sift_from_bytes
from imgdup_core.verify import DEFAULT_VERIFIER, ImageView, VerifierConfig, verify_images
from schemas import CandidatePairV1, EvidenceV1, VerifiedPairV1, VersionsV1


@dataclass(frozen=True)
class VerifyContext:
    """What verification needs from the world; the worker builds it from its runtime."""

    pool: AsyncConnectionPool
    run_cpu: RunCpu
    embedding_model: str
    # Features of images indexed without stored ones are extracted once per process, not per pair.
    cache: FeatureCache = field(default_factory=FeatureCache)
    # The verifier deciding (settings and calibrated model): the default unless a test or a
    # benchmark compares another version.
    config: VerifierConfig = DEFAULT_VERIFIER


def evidence_of(verdict: Verdict) -> EvidenceV1:
    """The public evidence of a verdict: the core's measurements under the same names, and the
    fused score."""
    return EvidenceV1(**dataclasses.asdict(verdict.evidence), score=verdict.score)


def _view(image: images.ImageForVerification) -> ImageView:
    # Features stored at indexing save extracting them again for every pair, and the stored
    # copies are decoded only for a pair that aligns; images indexed before features were
    # stored (or under other SIFT settings) get them extracted here.
    return ImageView(
        rgb=None,
        phash=(image.phash, image.phash_mirrored),
        jpeg=image.jpeg,
        photo_jpeg=image.photo_jpeg or None,
        sift=sift_from_bytes(image.sift) if image.sift else None,
        photo_sift=sift_from_bytes(image.photo_sift) if image.photo_sift else None,
    )


async def verify_candidate(ctx: VerifyContext, candidate: CandidatePairV1) -> VerifiedPairV1 | None:
    """Decide one candidate; safe to repeat: a pair decided before is handed on again only when it
    is a duplicate not yet clustered (a crash between the verdict and its hand-over)."""
    status, a, b = await retry_transient(
        "verifier.load", images.load_for_verification, ctx.pool, candidate.a.image_id, candidate.b.image_id
    )
    if status in ("rejected", "clustered", "missing"):
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
                _view(a), _view(b), cosine=candidate.cosine, config=ctx.config, cache=ctx.cache
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
    return await retry_transient("verifier.save", pairs.save_verdict, ctx.pool, row)
