"""Consumes imgdup.pairs-verified.v1 (key pair_id: VerifiedPairV1, or PairReviewV1 when a moderator's
verdict or a re-verification may have changed a pair's truth) -> adds or retracts the pair's edge,
creating, growing, merging or splitting duplicate clusters (imgdup.steps.cluster), and produces the
public imgdup.duplicates.v1 (key ad_id, DuplicateEventV1) and imgdup.cluster-changes.v1 (key ad_id,
ClusterChangeV1, in the order they were made). Single partition, single writer: changes never race."""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError

from imgdup import metrics
from imgdup.steps.cluster import (
    ClusterContext,
    changes_published,
    cluster_verified,
    pending_changes,
    review_pair,
)
from schemas import PairReviewV1, VerifiedPairV1
from streams.app import StreamsApp
from streams.policy import MessagePolicy, MessageRejected, Outgoing, StepOutput, for_each_message, handle
from streams.runtime import SharedRuntime

ClustererInput = VerifiedPairV1 | PairReviewV1
_INPUT: TypeAdapter[ClustererInput] = TypeAdapter(ClustererInput)


def decode_input(value: bytes | None) -> ClustererInput:
    """A verified pair or a pair review (it carries `type: pair_review`), or MessageRejected."""
    try:
        return _INPUT.validate_json(value or b"")
    except ValidationError as exc:
        raise MessageRejected("invalid_verified_pair", error=exc) from exc


async def step(app: StreamsApp, ctx: ClusterContext, item: ClustererInput) -> StepOutput:
    if isinstance(item, PairReviewV1):
        event = await review_pair(ctx, item)
    else:
        event = await cluster_verified(ctx, item)
    send = []
    if event is not None:
        send.append(
            Outgoing(
                app.topics.duplicates,
                key=str(event.duplicate.ad_id),
                value=event,
                headers={"imgdup-event-id": event.event_id.encode()},
            )
        )
    # This step's changes and any a crash left unpublished, in their one order.
    pending = await pending_changes(ctx)
    send += [
        Outgoing(
            app.topics.cluster_changes,
            key=change.key,
            value=change.change,
            headers={"imgdup-event-id": change.change.root.event_id.encode()},
        )
        for change in pending
    ]

    async def then() -> None:
        await changes_published(ctx, [change.seq for change in pending])
        if event is not None:
            metrics.DUPLICATES_FOUND.inc()

    return StepOutput(send=send, then=then)


def register(app: StreamsApp, shared: SharedRuntime) -> None:
    @app.faust.agent(app.topics.pairs_verified, concurrency=1)
    async def cluster_verified_pairs(stream: Any) -> None:
        ctx = (await shared.get()).cluster_context()
        policy = MessagePolicy(
            dead_letters=app.topics.dead_letters,
            decode=decode_input,
            run=partial(step, app, ctx),
            failure_reason="clustering_error",
        )
        await for_each_message(stream, partial(handle, policy))
