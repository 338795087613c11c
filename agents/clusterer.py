"""Consumes imgdup.pairs-verified.v1 (key pair_id, VerifiedPairV1) -> grows, creates or merges duplicate
clusters (imgdup.steps.cluster) and produces the public imgdup.duplicates.v1 (key ad_id,
DuplicateEventV1). Single partition, single writer: merges never race."""

from __future__ import annotations

from functools import partial
from typing import Any

from imgdup import metrics
from imgdup.steps.cluster import cluster_verified
from schemas import VerifiedPairV1
from streams.app import StreamsApp
from streams.policy import MessagePolicy, Outgoing, StepOutput, for_each_message, handle, model_decoder
from streams.runtime import SharedRuntime


def register(app: StreamsApp, shared: SharedRuntime) -> None:
    @app.faust.agent(app.topics.pairs_verified, concurrency=1)
    async def cluster_verified_pairs(stream: Any) -> None:
        ctx = (await shared.get()).cluster_context()

        async def run(pair: VerifiedPairV1) -> StepOutput:
            event = await cluster_verified(ctx, pair)
            if event is None:
                return StepOutput()
            out = Outgoing(
                app.topics.duplicates,
                key=str(event.duplicate.ad_id),
                value=event,
                headers={"imgdup-event-id": event.event_id.encode()},
            )
            return StepOutput(send=[out], then=_counted)

        policy = MessagePolicy(
            dead_letters=app.topics.dead_letters,
            decode=model_decoder(VerifiedPairV1, "invalid_verified_pair"),
            run=run,
            failure_reason="clustering_error",
        )
        await for_each_message(stream, partial(handle, policy))


async def _counted() -> None:
    metrics.DUPLICATES_FOUND.inc()
