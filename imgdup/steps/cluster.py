"""A verified pair (VerifiedPairV1) or a pair review (PairReviewV1) -> the pair's edge added, held or
retracted in Postgres (clusters created, grown, merged or split), the public duplicate events
(DuplicateEventV1: the pair's, then those of held pairs its merge released) to publish, and the
pending cluster changes (ClusterChangeV1, in order) to publish. No Kafka."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.store import changes, truth
from imgdup.store.changes import PendingChange
from imgdup.store.transient import retry_transient
from imgdup_core.bridges import BridgeRule
from schemas import DuplicateEventV1, PairReviewV1, VerifiedPairV1


@dataclass(frozen=True)
class ClusterContext:
    pool: AsyncConnectionPool
    # When a verified pair may join two established clusters (IMGDUP_CLUSTER_BRIDGE_*).
    bridge: BridgeRule = field(default_factory=BridgeRule)


async def cluster_verified(ctx: ClusterContext, pair: VerifiedPairV1) -> list[DuplicateEventV1]:
    """One transaction per pair; a pair clustered before yields the same event (same event_id),
    so a crash between commit and publish is repaired by the redelivery. The pair's stored truth
    decides, not the message: a moderator's `not_duplicate` keeps it out of every cluster, and a
    held bridge yields no event until it merges."""
    started = time.perf_counter()
    events = await retry_transient("clusterer", truth.cluster_pair, ctx.pool, pair.pair_id, ctx.bridge)
    metrics.STAGE_SECONDS.labels("cluster").observe(time.perf_counter() - started)
    return events


async def review_pair(ctx: ClusterContext, review: PairReviewV1) -> list[DuplicateEventV1]:
    """A pair whose truth may have changed (a moderator's verdict, a clustered pair rejected on
    re-verification): its edge added, held or retracted; its duplicate event when it just became an
    edge, and those of the held pairs its merge released."""
    started = time.perf_counter()
    events = await retry_transient("clusterer", truth.review_pair, ctx.pool, review.pair_id, ctx.bridge)
    metrics.STAGE_SECONDS.labels("cluster").observe(time.perf_counter() - started)
    return events


async def pending_changes(ctx: ClusterContext) -> list[PendingChange]:
    """Cluster changes not yet published, oldest first: this step's, and any a crash left behind."""
    return await retry_transient("clusterer", changes.unpublished, ctx.pool)


async def changes_published(ctx: ClusterContext, seqs: Sequence[int]) -> None:
    await retry_transient("clusterer", changes.mark_published, ctx.pool, seqs)
