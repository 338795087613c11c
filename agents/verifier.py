"""Consumes imgdup.image-candidates.v1 (key ad_id, CandidatePairV1) -> verifies each pair
(imgdup.steps.verify: SIFT + RANSAC, aligned SSIM, pHash and cosine, fused), stores the verdict and
evidence, and produces imgdup.pairs-verified.v1 (key pair_id) for duplicates (VerifiedPairV1) and for
rejected pairs that are still an edge of a cluster or have a moderator's verdict (PairReviewV1)."""

from __future__ import annotations

from functools import partial
from typing import Any

from imgdup.steps.verify import verify_candidate
from schemas import CandidatePairV1
from streams.app import StreamsApp
from streams.policy import MessagePolicy, Outgoing, StepOutput, for_each_message, handle, model_decoder
from streams.runtime import SharedRuntime


def register(app: StreamsApp, shared: SharedRuntime) -> None:
    @app.faust.agent(app.topics.image_candidates, concurrency=app.settings.verifier_concurrency)
    async def verify_candidates(stream: Any) -> None:
        ctx = await (await shared.get()).verify_context()

        async def run(candidate: CandidatePairV1) -> StepOutput:
            handed_on = await verify_candidate(ctx, candidate)
            if handed_on is None:
                return StepOutput()
            return StepOutput(
                send=[Outgoing(app.topics.pairs_verified, key=handed_on.pair_id, value=handed_on)]
            )

        policy = MessagePolicy(
            dead_letters=app.topics.dead_letters,
            decode=model_decoder(CandidatePairV1, "invalid_candidate"),
            run=run,
            failure_reason="verification_error",
        )
        await for_each_message(stream, partial(handle, policy))
