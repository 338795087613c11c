"""Consumes imgdup.image-candidates.v1 (key ad_id, CandidatePairV1) -> verifies each pair with SIFT +
RANSAC, aligned SSIM, pHash and cosine, stores the verdict and evidence, and produces
imgdup.pairs-verified.v1 (key pair_id, VerifiedPairV1) for duplicates."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from pydantic import ValidationError

from imgdup import metrics
from imgdup.store import repository
from imgdup_core.verify import DEFAULT_VERIFIER, ImageView, Verdict, sift_from_bytes, verify_images
from schemas import CandidatePairV1, EvidenceV1, VerifiedPairV1, VersionsV1
from streams import app as streams_app
from streams.deadletter import dead_letter
from streams.runtime import Runtime, for_each_message, get_runtime, retry_transient

log = logging.getLogger(__name__)


def _evidence(verdict: Verdict) -> EvidenceV1:
    ev = verdict.evidence
    return EvidenceV1(
        phash_distance=ev.phash_distance,
        phash_mirrored=ev.phash_mirrored,
        embedding_cosine=ev.cosine,
        sift_inliers=ev.sift_inliers,
        sift_mirrored=ev.sift_mirrored,
        ssim=ev.ssim,
        exact=ev.exact,
        score=verdict.score,
        sift_matches=ev.sift_matches,
        overlap=ev.overlap,
        mismatch=ev.mismatch,
        compared=ev.view,
    )


def _view(image: repository.ImageForVerification) -> ImageView:
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


async def verify_candidate(rt: Runtime, candidate: CandidatePairV1) -> VerifiedPairV1 | None:
    status, a, b = await retry_transient(
        "verifier.load",
        lambda: repository.load_for_verification(rt.pool, candidate.a.image_id, candidate.b.image_id),
    )
    if status in ("rejected", "clustered", "missing"):
        return None  # already decided and handed on: a redelivery or replay changes nothing
    if status == "verified":  # decided before a crash, not yet handed on: hand it on again
        return await retry_transient(
            "verifier.load", lambda: repository.verified_pair(rt.pool, candidate.pair_id)
        )
    if a is None or b is None:
        raise LookupError(f"pair {candidate.pair_id}: an image is not indexed")
    embedder = await rt.embedder()
    versions = VersionsV1(embedding_model=embedder.version, verifier=DEFAULT_VERIFIER.version)
    if a.pixel_sha256 == b.pixel_sha256:
        # Same decoded pixels: no need for the heavy methods.
        row = repository.VerdictRow(
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
            versions=versions,
        )
    else:
        started = time.perf_counter()
        verdict = await rt.run_cpu(lambda: verify_images(_view(a), _view(b), cosine=candidate.cosine))
        metrics.STAGE_SECONDS.labels("verify").observe(time.perf_counter() - started)
        row = repository.VerdictRow(
            pair_id=candidate.pair_id,
            is_duplicate=verdict.is_duplicate,
            confidence=verdict.confidence,
            evidence=_evidence(verdict),
            versions=VersionsV1(embedding_model=embedder.version, verifier=verdict.verifier_version),
        )
    metrics.VERDICTS.labels("duplicate" if row.is_duplicate else "distinct").inc()
    return await retry_transient("verifier.save", lambda: repository.save_verdict(rt.pool, row))


async def handle_message(rt: Runtime, message: Any) -> None:
    try:
        candidate = CandidatePairV1.model_validate_json(message.value or b"")
    except ValidationError as exc:
        await dead_letter(message, reason="invalid_candidate", error=exc)
        return
    try:
        verified = await verify_candidate(rt, candidate)
    except Exception as exc:
        log.exception("pair %s failed", candidate.pair_id)
        await dead_letter(message, reason="verification_error", error=exc)
        return
    if verified is not None:
        fut = await streams_app.pairs_verified.send(
            key=verified.pair_id.encode(), value=verified.model_dump_json().encode()
        )
        await fut


@streams_app.app.agent(streams_app.image_candidates, concurrency=streams_app.settings.verifier_concurrency)
async def verify_candidates(stream: Any) -> None:
    rt = await get_runtime(streams_app.settings)
    await for_each_message(stream, partial(handle_message, rt))
