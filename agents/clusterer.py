"""Consumes imgdup.pairs-verified.v1 (key pair_id: VerifiedPairV1, or PairReviewV1 when a moderator's
verdict or a re-verification may have changed a pair's truth) -> adds, holds or retracts the pair's
edge, creating, growing, merging or splitting duplicate clusters (imgdup.steps.cluster), and produces the
public imgdup.duplicates.v1 (key ad_id, DuplicateEventV1) and imgdup.cluster-changes.v1 (key ad_id,
ClusterChangeV1, in the order they were made). Single partition, single writer: changes never race.
Also hands itself, periodically, the pairs Postgres says it has still to settle (a review lost, or a
database an old replay left behind) and unpublished changes, so compose and Helm converge too."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import TypeAdapter, ValidationError

from imgdup import metrics
from imgdup.steps.cluster import (
    ClusterContext,
    changes_published,
    cluster_verified,
    pending_changes,
    review_pair,
)
from imgdup.store.truth import pairs_to_review
from schemas import PairReviewV1, VerifiedPairV1
from schemas.wire import encode, encode_key
from streams.app import StreamsApp
from streams.policy import (
    MessagePolicy,
    MessageRejected,
    Outgoing,
    StepOutput,
    for_each_message,
    handle,
    redrive_round,
)
from streams.runtime import SharedRuntime

log = logging.getLogger(__name__)

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
        events = await review_pair(ctx, item)
    else:
        events = await cluster_verified(ctx, item)
    send = [
        Outgoing(
            app.topics.duplicates,
            key=str(event.duplicate.ad_id),
            value=event,
            headers={"imgdup-event-id": event.event_id.encode()},
        )
        for event in events
    ]
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
        if events:
            metrics.DUPLICATES_FOUND.inc(len(events))

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

    redrive = UnsettledRedrive(app.settings.redrive_after_s)

    # Checked twice per period (at most every 30 s), like the images role's re-drive of events.
    @app.faust.timer(min(30.0, max(0.5, app.settings.redrive_after_s / 2)))  # type: ignore[untyped-decorator]
    async def redrive_unsettled() -> None:
        rt = await shared.get()
        await redrive.run(app, rt.pool)


class UnsettledRedrive:
    """Which pairs to hand the clusterer again. A pair is re-driven once Postgres has shown it
    unsettled for `after_s` (one just rejected or reviewed is usually on its way already), then at
    most once per `after_s` while it stays so (the clusterer may lag). Re-driving is always safe: the
    clusterer reconciles each pair from Postgres, so an extra review changes nothing."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self.clock = clock
        self.since: dict[str, float] = {}  # pair -> first seen unsettled, or last re-driven

    def due(self, unsettled: list[str]) -> list[str]:
        now = self.clock()
        self.since = {pair: self.since.get(pair, now) for pair in unsettled}  # settled ones forgotten
        due = [pair for pair, since in self.since.items() if now - since >= self.after_s]
        self.since.update(dict.fromkeys(due, now))
        return due

    async def run(self, app: StreamsApp, pool: AsyncConnectionPool) -> int:
        """Publish a review of each due pair on the clusterer's own input topic (its one writer keeps
        the order of changes). Never raises: a failed round is tried again next period."""

        async def body() -> int:
            due = self.due(await pairs_to_review(pool))
            for pair_id in due:
                review = PairReviewV1(pair_id=pair_id, cause="verifier", requested_at=datetime.now(UTC))
                await app.topics.pairs_verified.send(key=encode_key(pair_id), value=encode(review))
            return len(due)

        return await redrive_round("unsettled pairs", "pairs the clusterer had still to settle", body)
